"""An HTTP proxy in front of the AWS API emulator that injects faults, for the fault tests.

    python3 scripts/fault-proxy.py --target http://127.0.0.1:PORT [--fail-percent 20]
        [--outage-after N --outage-seconds S] [--seed 1]

Prints the port it listens on (first line of stdout), then serves until killed. Of the requests:
- `--fail-percent` are failed, chosen with a seeded generator, in turns:
  a 500 InternalServerError before the request reaches the emulator; a 400 ThrottlingException
  before it; and a 500 *after* the emulator has carried the request out (the response is lost:
  the nastiest case, as the client retries something already done);
- after `--outage-after` requests, every connection for `--outage-seconds` is closed without an
  answer, as when the emulator is down or restarting.
`GET /__fault-proxy/stats` answers what was done: requests, faults by kind, connections dropped.
Only the Python standard library is used.
"""

import argparse
import http.client
import json
import http.server
import random
import sys
import threading
import time
import urllib.parse

FAULTS = [
    (500, "InternalServerError", "before"),
    (400, "ThrottlingException", "before"),
    (500, "InternalServerError", "after"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fail-percent", type=float, default=0.0)
    parser.add_argument("--outage-after", type=int, default=-1)
    parser.add_argument("--outage-seconds", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    target = urllib.parse.urlparse(args.target)
    rng = random.Random(args.seed)
    lock = threading.Lock()
    state = {"requests": 0, "faults": 0, "dropped": 0, "outage_until": 0.0, "outage_done": False}
    by_kind = {f"{status} {code} {when}": 0 for status, code, when in FAULTS}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def _fault(self, status: int, code: str) -> None:
            body = (
                '{"__type":"com.amazonaws.dynamodb.v20120810#%s","message":"injected by fault-proxy"}'
                % code
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("x-amzn-ErrorType", code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path == "/__fault-proxy/stats":
                with lock:
                    stats = json.dumps({**state, "by_kind": by_kind}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(stats)))
                self.end_headers()
                self.wfile.write(stats)
                return
            with lock:
                state["requests"] += 1
                now = time.monotonic()
                if (
                    not state["outage_done"]
                    and args.outage_after >= 0
                    and state["requests"] > args.outage_after
                ):
                    state["outage_done"] = True
                    state["outage_until"] = now + args.outage_seconds
                down = now < state["outage_until"]
                fault = None
                if not down and rng.random() * 100 < args.fail_percent:
                    fault = FAULTS[state["faults"] % len(FAULTS)]
                    state["faults"] += 1
                    by_kind[f"{fault[0]} {fault[1]} {fault[2]}"] += 1
                if down:
                    state["dropped"] += 1
            if down:
                self.close_connection = True
                self.connection.close()
                return
            if fault and fault[2] == "before":
                self._fault(fault[0], fault[1])
                return
            upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            upstream.close()
            if fault:
                self._fault(fault[0], fault[1])
                return
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(server.server_address[1], flush=True)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
