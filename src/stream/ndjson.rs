//! Newline-delimited JSON: one document per line; blank lines are skipped.

use super::lines::Lines;
use super::{Event, Framing, FramingError};

pub(super) struct Ndjson {
    lines: Lines,
}

impl Ndjson {
    pub fn new(max: usize) -> Ndjson {
        Ndjson { lines: Lines::new(max) }
    }
}

fn push(line: &[u8], out: &mut Vec<Event>) {
    let text = String::from_utf8_lossy(line);
    let t = text.trim();
    if !t.is_empty() {
        out.push(Event { name: None, data: t.to_string() });
    }
}

impl Framing for Ndjson {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<(), FramingError> {
        self.lines.feed(bytes, |line| {
            push(line, out);
            Ok(())
        })
    }

    /// A last line without its line end counts only when it is a whole JSON document (the
    /// stream may have been cut in the middle of it).
    fn finish(&mut self, out: &mut Vec<Event>) -> Result<(), FramingError> {
        let rest = self.lines.take_rest();
        if serde_json::from_slice::<serde::de::IgnoredAny>(&rest).is_ok() {
            push(&rest, out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::Framing;
    use crate::stream::decode_in_pieces;

    #[test]
    fn one_document_per_line() {
        let out = decode_in_pieces(Framing::Ndjson, 1 << 20, b"{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}", 2).unwrap();
        let data: Vec<&str> = out.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, vec!["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
    }

    #[test]
    fn a_line_that_never_ends_is_refused() {
        assert!(decode_in_pieces(Framing::Ndjson, 64, &[b'{'; 100], 9).is_err());
    }
}
