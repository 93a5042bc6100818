#!/usr/bin/env python3
"""Validates CloudWatch embedded metric format documents, one JSON object per line.

Usage: validate-emf.py SCHEMA DOCUMENTS.jsonl [--now-ms MS]

SCHEMA is AWS's published JSON schema (tests/fixtures/emf/schema.json); on top of it, the
rules AWS states in prose (tests/fixtures/emf/README.md lists them and their pages). With
--now-ms, each document's timestamp must lie in CloudWatch's window around that moment.
Prints one line per problem, naming the document's line; exits 1 if there is any.
"""
import json
import sys

import jsonschema

TWO_WEEKS_MS = 14 * 86_400_000
TWO_HOURS_MS = 2 * 3_600_000


def problems(document, validator, now_ms):
    for error in validator.iter_errors(document):
        yield f"schema: {'/'.join(map(str, error.absolute_path))}: {error.message}"
    if not isinstance(document, dict) or not isinstance(document.get("_aws"), dict):
        return
    if len(json.dumps(document).encode()) > 1_000_000:
        yield "larger than 1 MB"
    timestamp = document["_aws"].get("Timestamp")
    if now_ms is not None and isinstance(timestamp, int):
        if timestamp < now_ms - TWO_WEEKS_MS:
            yield f"Timestamp {timestamp} is more than two weeks before {now_ms}"
        if timestamp > now_ms + TWO_HOURS_MS:
            yield f"Timestamp {timestamp} is more than two hours after {now_ms}"
    for directive in document["_aws"].get("CloudWatchMetrics", []):
        namespace = directive.get("Namespace", "")
        if not 1 <= len(namespace) <= 255 or namespace.startswith("AWS/"):
            yield f"namespace {namespace!r}: 1 to 255 characters, not starting with AWS/"
        metrics = directive.get("Metrics", [])
        if len(metrics) > 100:
            yield f"{len(metrics)} metrics in one directive (at most 100)"
        for dimension_set in directive.get("Dimensions", []):
            if len(dimension_set) > 30:
                yield f"{len(dimension_set)} dimensions in one set (at most 30)"
            for key in dimension_set:
                value = document.get(key)
                if not isinstance(value, str):
                    yield f"dimension {key!r} is not a string member of the root: {value!r}"
                elif len(value) > 1024 or value == "":
                    yield f"dimension {key!r} has {len(value)} characters (1 to 1024)"
        for metric in metrics:
            name = metric.get("Name", "")
            if len(name) > 255:
                yield f"metric name {name[:40]!r}… is longer than 255 characters"
            value = document.get(name)
            numbers = value if isinstance(value, list) else [value]
            if isinstance(value, list) and len(value) > 100:
                yield f"metric {name!r} has {len(value)} values (at most 100)"
            if not numbers or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers
            ):
                yield f"metric {name!r} is not a number on the root: {value!r}"


def main(argv):
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != "--now-ms"):
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        schema = json.load(f)
    validator = jsonschema.Draft7Validator(schema)
    now_ms = int(argv[4]) if len(argv) == 5 else None
    bad = 0
    count = 0
    with open(argv[2]) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            count += 1
            try:
                document = json.loads(line)
            except json.JSONDecodeError as error:
                print(f"line {number}: not JSON: {error}")
                bad += 1
                continue
            for problem in problems(document, validator, now_ms):
                print(f"line {number}: {problem}")
                bad += 1
    print(f"{count} documents, {bad} problems", file=sys.stderr)
    return 1 if bad or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
