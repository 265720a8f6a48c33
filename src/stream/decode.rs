//! Framings: Server-Sent Events and newline-delimited JSON, decoded incrementally from bytes
//! however they arrive (split lines, split UTF-8 characters, `\r\n`, comments, multi-line data).

use crate::spec::Framing;

/// One upstream event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The SSE `event:` field, when there was one.
    pub name: Option<String>,
    pub data: String,
}

pub struct Decoder {
    framing: Framing,
    buf: Vec<u8>,
    /// Set when the last byte seen was a `\r`, so that a `\n` after it is not a second line end.
    after_cr: bool,
    name: Option<String>,
    data: String,
    has_data: bool,
}

impl Decoder {
    pub fn new(framing: Framing) -> Decoder {
        Decoder {
            framing,
            buf: Vec::with_capacity(1024),
            after_cr: false,
            name: None,
            data: String::new(),
            has_data: false,
        }
    }

    /// Feed bytes; complete events are pushed to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Event>) {
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\n' && self.after_cr {
                self.after_cr = false;
                start = i + 1;
                continue;
            }
            self.after_cr = b == b'\r';
            if b == b'\n' || b == b'\r' {
                self.buf.extend_from_slice(&bytes[start..i]);
                let line = std::mem::take(&mut self.buf);
                self.line(&line, out);
                self.buf = line;
                self.buf.clear();
                start = i + 1;
            }
        }
        self.buf.extend_from_slice(&bytes[start..]);
    }

    /// The upstream closed: flush a last line or event that had no terminator.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.line(&line, out);
        }
        self.dispatch(out);
    }

    fn line(&mut self, raw: &[u8], out: &mut Vec<Event>) {
        let line = String::from_utf8_lossy(raw);
        match self.framing {
            Framing::Ndjson => {
                let t = line.trim();
                if !t.is_empty() {
                    out.push(Event { name: None, data: t.to_string() });
                }
            }
            Framing::Sse => {
                if line.is_empty() {
                    self.dispatch(out);
                    return;
                }
                if line.starts_with(':') {
                    return;
                }
                let (field, value) = match line.find(':') {
                    Some(i) => {
                        let v = &line[i + 1..];
                        (&line[..i], v.strip_prefix(' ').unwrap_or(v))
                    }
                    None => (&line[..], ""),
                };
                match field {
                    "data" => {
                        if self.has_data {
                            self.data.push('\n');
                        }
                        self.data.push_str(value);
                        self.has_data = true;
                    }
                    "event" => self.name = Some(value.to_string()),
                    _ => {}
                }
            }
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        if self.has_data {
            out.push(Event { name: self.name.take(), data: std::mem::take(&mut self.data) });
        }
        self.name = None;
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(framing: Framing, input: &[u8], piece: usize) -> Vec<Event> {
        let mut d = Decoder::new(framing);
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            d.feed(chunk, &mut out);
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn sse_survives_any_split() {
        let input = "event: a\r\ndata: {\"t\":\"h\u{e9}llo \u{1F600}\"}\r\n\r\n: comment\n\nevent: b\ndata: line1\ndata: line2\n\ndata:x\n\n";
        let expected = vec![
            Event { name: Some("a".into()), data: "{\"t\":\"h\u{e9}llo \u{1F600}\"}".into() },
            Event { name: Some("b".into()), data: "line1\nline2".into() },
            Event { name: None, data: "x".into() },
        ];
        for piece in 1..input.len() {
            assert_eq!(decode_in_pieces(Framing::Sse, input.as_bytes(), piece), expected, "piece size {piece}");
        }
    }

    #[test]
    fn sse_flushes_an_unterminated_last_event() {
        assert_eq!(decode_in_pieces(Framing::Sse, b"data: 1\n\ndata: 2", 3).len(), 2);
    }

    #[test]
    fn ndjson_lines() {
        let out = decode_in_pieces(Framing::Ndjson, b"{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}", 2);
        let data: Vec<&str> = out.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, vec!["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
    }
}
