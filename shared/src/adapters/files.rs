//! Recorded events on disk: JSON Lines files, JSON array files, single (pretty-printed) JSON
//! event files, and directories of them.
//!
//! JSON Lines are streamed a line at a time, so a file of millions of events never sits in
//! memory whole; an array or a single pretty-printed event is read whole.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Extensions read when a directory is walked (a file named on its own is read whatever its
/// extension).
pub const EVENT_FILE_EXTENSIONS: [&str; 3] = ["json", "jsonl", "ndjson"];

/// The UTF-8 byte-order mark.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A file or directory that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct InputError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn input_error(path: &Path, source: std::io::Error) -> InputError {
    InputError {
        path: path.to_path_buf(),
        source,
    }
}

/// One file to read, with its size for progress reporting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Expands paths: files as given, directories walked recursively in name order.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<InputFile>, InputError> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|e| input_error(path, e))?;
        if metadata.is_dir() {
            walk_directory(path, &mut files)?;
        } else {
            files.push(InputFile {
                path: path.clone(),
                bytes: metadata.len(),
            });
        }
    }
    Ok(files)
}

fn walk_directory(directory: &Path, files: &mut Vec<InputFile>) -> Result<(), InputError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(directory)
        .map_err(|e| input_error(directory, e))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| input_error(directory, e))?;
    entries.sort();
    for path in entries {
        let metadata = std::fs::metadata(&path).map_err(|e| input_error(&path, e))?;
        if metadata.is_dir() {
            walk_directory(&path, files)?;
        } else if path
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| {
                EVENT_FILE_EXTENSIONS
                    .iter()
                    .any(|known| ext.eq_ignore_ascii_case(known))
            })
        {
            files.push(InputFile {
                path,
                bytes: metadata.len(),
            });
        }
    }
    Ok(())
}

/// One event's bytes and where it stood.
#[derive(Clone, Copy, Debug)]
pub struct RawEvent<'a> {
    /// 1-based line where the event starts.
    pub line: usize,
    pub bytes: &'a [u8],
    /// Bytes of the file read so far (for progress).
    pub consumed: u64,
    /// Why these bytes cannot be an event whatever they say (the rest of a JSON array cut
    /// short): the event is rejected with this reason.
    pub problem: Option<&'static str>,
}

/// Why the tail of a JSON array that does not parse is rejected.
pub const BROKEN_ARRAY: &str = "the JSON array breaks off here (a truncated or damaged file): the events before this point were read, nothing after it can be";

/// Calls `each` for every event in the file, in file order. Blank lines are passed over. A
/// JSON array that breaks off (a truncated file) gives every element before the break, then
/// its unreadable rest as one rejected event ([`BROKEN_ARRAY`]); an object file that is not
/// valid JSON as a whole is read as JSON Lines, so every bad line is reported on its own. A
/// UTF-8 byte-order mark (files saved by Windows tools) is passed over.
pub fn read_events(path: &Path, mut each: impl FnMut(RawEvent<'_>)) -> Result<(), InputError> {
    let file = File::open(path).map_err(|e| input_error(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    // A UTF-8 byte-order mark (Windows tools write one) is not part of the JSON.
    if reader
        .fill_buf()
        .map_err(|e| input_error(path, e))?
        .starts_with(UTF8_BOM)
    {
        reader.consume(UTF8_BOM.len());
    }
    let (first, first_line_is_json) = peek(&mut reader).map_err(|e| input_error(path, e))?;
    match first {
        None => Ok(()),
        // JSON Lines (the common, large case) are streamed.
        Some(b'{') if first_line_is_json => read_lines(reader, path, 0, &mut each),
        Some(b'[') | Some(b'{') => {
            let mut text = Vec::new();
            reader
                .read_to_end(&mut text)
                .map_err(|e| input_error(path, e))?;
            read_whole(&text, first == Some(b'['), &mut each);
            Ok(())
        }
        Some(_) => read_lines(reader, path, 0, &mut each),
    }
}

/// The first non-blank byte, and whether the first line is a JSON value on its own.
fn peek(reader: &mut BufReader<File>) -> std::io::Result<(Option<u8>, bool)> {
    let buffer = reader.fill_buf()?;
    let first = buffer.iter().copied().find(|b| !b.is_ascii_whitespace());
    let first_line_is_json = buffer
        .iter()
        .position(|&b| b == b'\n')
        .is_some_and(|end| serde_json::from_slice::<serde::de::IgnoredAny>(&buffer[..end]).is_ok());
    Ok((first, first_line_is_json))
}

/// A whole file in memory: an array of events, one (pretty-printed) event, or JSON Lines
/// whose first line happens to be an object.
fn read_whole(text: &[u8], array: bool, each: &mut impl FnMut(RawEvent<'_>)) {
    let total = text.len() as u64;
    if array {
        read_array(text, each);
        return;
    } else {
        let first_line_end = text.iter().position(|&b| b == b'\n').unwrap_or(text.len());
        let first_line_is_json =
            serde_json::from_slice::<serde::de::IgnoredAny>(&text[..first_line_end]).is_ok();
        if !first_line_is_json && serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok() {
            let start = text
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(0);
            let line = 1 + text[..start].iter().filter(|&&b| b == b'\n').count();
            each(RawEvent {
                line,
                bytes: text,
                consumed: total,
                problem: None,
            });
            return;
        }
    }
    let mut consumed = 0_u64;
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        consumed += line.len() as u64 + 1;
        let trimmed = line.trim_ascii();
        if !trimmed.is_empty() {
            each(RawEvent {
                line: index + 1,
                bytes: trimmed,
                consumed: consumed.min(total),
                problem: None,
            });
        }
    }
}

/// The elements of a JSON array one at a time, so a break loses only what follows it.
fn read_array(text: &[u8], each: &mut impl FnMut(RawEvent<'_>)) {
    // Lines are counted forward from the last element's offset, so a whole file is scanned
    // once (counting from the start for every element made a large array quadratic).
    let mut lines = LineCounter::default();
    let mut line_at = |offset: usize| lines.line_at(text, offset);
    let skip = |mut at: usize, also: &[u8]| {
        while at < text.len() && (text[at].is_ascii_whitespace() || also.contains(&text[at])) {
            at += 1;
        }
        at
    };
    // Past the opening bracket.
    let mut at = skip(0, &[]) + 1;
    let mut expect_comma = false;
    loop {
        at = skip(at, &[]);
        match text.get(at) {
            Some(b']') => {
                // Anything but blanks after the closing bracket is read as more lines.
                let rest = skip(at + 1, &[]);
                if rest < text.len() {
                    break_off(text, rest, line_at(rest), each);
                }
                return;
            }
            Some(b',') if expect_comma => {
                at += 1;
                expect_comma = false;
                continue;
            }
            Some(_) if !expect_comma => {}
            // The array ends without its closing bracket, or two elements lack their comma.
            None | Some(_) => {
                break_off(text, at.min(text.len()), line_at(at.min(text.len())), each);
                return;
            }
        }
        let mut stream = serde_json::Deserializer::from_slice(&text[at..])
            .into_iter::<&serde_json::value::RawValue>();
        match stream.next() {
            Some(Ok(element)) => {
                let bytes = element.get().as_bytes();
                let offset = bytes.as_ptr() as usize - text.as_ptr() as usize;
                each(RawEvent {
                    line: line_at(offset),
                    bytes,
                    consumed: (offset + bytes.len()) as u64,
                    problem: None,
                });
                at += stream.byte_offset();
                expect_comma = true;
            }
            _ => {
                break_off(text, at, line_at(at), each);
                return;
            }
        }
    }
}

/// The 1-based line of a byte offset, for offsets asked in increasing order: each call
/// scans only the bytes since the previous one.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    newlines: usize,
}

impl LineCounter {
    fn line_at(&mut self, text: &[u8], offset: usize) -> usize {
        let offset = offset.min(text.len());
        if offset < self.offset {
            *self = Self::default();
        }
        self.newlines += text[self.offset..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.offset = offset;
        1 + self.newlines
    }
}

/// The unreadable rest of an array, from `at`, as one rejected event.
fn break_off(text: &[u8], at: usize, line: usize, each: &mut impl FnMut(RawEvent<'_>)) {
    each(RawEvent {
        line,
        bytes: text[at..].trim_ascii(),
        consumed: text.len() as u64,
        problem: Some(BROKEN_ARRAY),
    });
}

fn read_lines(
    mut reader: BufReader<File>,
    path: &Path,
    mut consumed: u64,
    each: &mut impl FnMut(RawEvent<'_>),
) -> Result<(), InputError> {
    let mut buffer = Vec::with_capacity(4096);
    let mut line = 0;
    loop {
        buffer.clear();
        let read = reader
            .read_until(b'\n', &mut buffer)
            .map_err(|e| input_error(path, e))?;
        if read == 0 {
            return Ok(());
        }
        line += 1;
        consumed += read as u64;
        let trimmed = buffer.trim_ascii();
        if !trimmed.is_empty() {
            each(RawEvent {
                line,
                bytes: trimmed,
                consumed,
                problem: None,
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lines_of(content: &str) -> Vec<(usize, String)> {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("events.json");
        std::fs::write(&path, content).unwrap();
        let mut seen = Vec::new();
        read_events(&path, |event| {
            seen.push((
                event.line,
                String::from_utf8_lossy(event.bytes).into_owned(),
            ));
        })
        .unwrap();
        seen
    }

    #[test]
    fn json_lines_keep_their_line_numbers_and_skip_blanks() {
        let seen = lines_of("{\"a\":1}\n\n{\"b\":2}\nnot json\n");
        assert_eq!(
            seen,
            vec![
                (1, "{\"a\":1}".into()),
                (3, "{\"b\":2}".into()),
                (4, "not json".into())
            ]
        );
    }

    #[test]
    fn arrays_give_each_element_with_its_line() {
        let seen = lines_of("[\n  {\"a\":1},\n  {\"b\":2}\n]\n");
        assert_eq!(seen, vec![(2, "{\"a\":1}".into()), (3, "{\"b\":2}".into())]);
    }

    #[test]
    fn a_pretty_printed_array_gives_each_element_the_line_it_starts_on() {
        let elements: Vec<String> = (0..300)
            .map(|i| format!("  {{\n    \"id\": {i}\n  }}"))
            .collect();
        let seen = lines_of(&format!("[\n{}\n]\n", elements.join(",\n")));
        assert_eq!(seen.len(), 300);
        for (i, (line, _)) in seen.iter().enumerate() {
            assert_eq!(*line, 2 + 3 * i, "element {i}");
        }
    }

    #[test]
    fn the_line_counter_agrees_with_counting_from_the_start() {
        let text = b"a\nbb\n\nccc\nd";
        let mut counter = LineCounter::default();
        for offset in [0, 1, 2, 2, 5, 6, 10, 12, 99, 3] {
            let from_start = 1 + text[..offset.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            assert_eq!(counter.line_at(text, offset), from_start, "offset {offset}");
        }
    }

    #[test]
    fn a_pretty_printed_event_is_one_event() {
        let seen = lines_of("{\n  \"a\": 1\n}\n");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, 1);
    }

    #[test]
    fn a_broken_array_keeps_its_whole_elements() {
        let seen = lines_of("[\n{\"a\":1},\n");
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn a_truncated_array_gives_every_whole_event_and_rejects_only_its_rest() {
        let events: Vec<String> = (0..50).map(|i| format!("{{\"id\": \"{i}\"}}")).collect();
        let whole = format!("[\n{}\n]\n", events.join(",\n"));
        let cut = &whole[..whole.len() - 12];
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("events.json");
        std::fs::write(&path, cut).unwrap();
        let (mut read, mut broken) = (Vec::new(), Vec::new());
        read_events(&path, |event| match event.problem {
            None => read.push(String::from_utf8_lossy(event.bytes).into_owned()),
            Some(problem) => broken.push((event.line, problem)),
        })
        .unwrap();
        assert_eq!(read, events[..49].to_vec());
        assert_eq!(broken, vec![(51, BROKEN_ARRAY)]);
        // Whole, nothing is rejected; two elements without their comma break there.
        std::fs::write(&path, &whole).unwrap();
        let mut problems = 0;
        read_events(&path, |event| {
            problems += usize::from(event.problem.is_some())
        })
        .unwrap();
        assert_eq!(problems, 0);
        assert_eq!(lines_of("[{\"a\":1} {\"b\":2}]").len(), 2);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_event() {
        let seen = lines_of("\u{feff}{\n  \"a\": 1\n}\n");
        assert_eq!(seen, vec![(1, "{\n  \"a\": 1\n}\n".to_owned())]);
        let seen = lines_of("\u{feff}{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(seen, vec![(1, "{\"a\":1}".into()), (2, "{\"b\":2}".into())]);
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let error = expand_paths(&[PathBuf::from("/no/such/file.jsonl")]).unwrap_err();
        assert!(error.to_string().contains("/no/such/file.jsonl"), "{error}");
    }
}
