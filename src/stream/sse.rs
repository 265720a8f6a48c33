//! Server-Sent Events (the `text/event-stream` format of the HTML standard): `event:` and
//! `data:` lines, a blank line ends an event, `:` starts a comment.

use super::lines::Lines;
use super::{Event, Framing, FramingError};

pub(super) struct Sse {
    lines: Lines,
    name: Option<String>,
    data: String,
    has_data: bool,
    max: usize,
}

impl Sse {
    pub fn new(max: usize) -> Sse {
        Sse { lines: Lines::new(max), name: None, data: String::new(), has_data: false, max }
    }

    fn line(&mut self, raw: &[u8], out: &mut Vec<Event>) -> Result<(), FramingError> {
        if raw.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if raw[0] == b':' {
            return Ok(());
        }
        let (field, value) = match memchr::memchr(b':', raw) {
            Some(i) => {
                let v = &raw[i + 1..];
                (&raw[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (raw, &b""[..]),
        };
        match field {
            b"data" => {
                if self.data.len() + value.len() + 1 > self.max {
                    return Err(FramingError(format!("the upstream sent an event larger than {} bytes", self.max)));
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&text(value));
                self.has_data = true;
            }
            b"event" => self.name = Some(text(value).into_owned()),
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        if self.has_data {
            out.push(Event { name: self.name.take(), data: std::mem::take(&mut self.data) });
        }
        self.name = None;
        self.has_data = false;
    }
}

/// Text as it is when it is valid UTF-8 (the usual case, checked without copying); replacement
/// characters otherwise.
fn text(v: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(v) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(v),
    }
}

impl Framing for Sse {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<(), FramingError> {
        let mut lines = std::mem::replace(&mut self.lines, Lines::new(0));
        let r = lines.feed(bytes, |line| self.line(line, out));
        self.lines = lines;
        r
    }

    /// At the end of the input, an event whose lines all ended is dispatched even without its
    /// blank line; a line cut short is dropped (the stream was truncated mid-event, and half an
    /// event is not an event).
    fn finish(&mut self, out: &mut Vec<Event>) -> Result<(), FramingError> {
        if self.lines.take_rest().is_empty() {
            self.dispatch(out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::Framing;
    use crate::stream::{decode_in_pieces, Event};

    #[test]
    fn events_survive_any_split() {
        let input = "event: a\r\ndata: {\"t\":\"h\u{e9}llo \u{1F600}\"}\r\n\r\n: comment\n\nevent: b\ndata: line1\ndata: line2\n\ndata:x\n\n";
        let expected = vec![
            Event { name: Some("a".into()), data: "{\"t\":\"h\u{e9}llo \u{1F600}\"}".into() },
            Event { name: Some("b".into()), data: "line1\nline2".into() },
            Event { name: None, data: "x".into() },
        ];
        for piece in 1..input.len() {
            assert_eq!(
                decode_in_pieces(Framing::Sse, 1 << 20, input.as_bytes(), piece).unwrap(),
                expected,
                "piece {piece}"
            );
        }
    }

    #[test]
    fn a_last_event_without_its_blank_line_is_flushed_but_a_cut_line_is_not() {
        assert_eq!(decode_in_pieces(Framing::Sse, 1 << 20, b"data: 1\n\ndata: 2\n", 3).unwrap().len(), 2);
        assert_eq!(decode_in_pieces(Framing::Sse, 1 << 20, b"data: 1\n\ndata: {\"cut", 3).unwrap().len(), 1);
    }

    #[test]
    fn endless_lines_and_endless_events_are_refused() {
        let endless_line = [b"data: ".as_slice(), &[b'x'; 200]].concat();
        assert!(decode_in_pieces(Framing::Sse, 100, &endless_line, 7).is_err());
        let endless_event = b"data: xxxxxxxxxx\n".repeat(20);
        assert!(decode_in_pieces(Framing::Sse, 100, &endless_event, 5).is_err());
        assert!(decode_in_pieces(Framing::Sse, 100, &b"data: xxxxxxxxxx\n\n".repeat(20), 5).is_ok());
    }
}
