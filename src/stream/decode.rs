//! Framings: Server-Sent Events, newline-delimited JSON and AWS binary event streams, decoded
//! incrementally from bytes however they arrive (split lines, split UTF-8 characters, `\r\n`,
//! comments, multi-line data, frames split anywhere).

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
    /// A binary frame failed its checksum: nothing after it is decoded.
    poisoned: bool,
}

/// Encode one AWS event-stream frame, as a service sends it (for vectors and tests).
pub fn encode_aws_frame(event: &str, payload: &str) -> Vec<u8> {
    let mut headers = Vec::new();
    for (k, v) in [(":event-type", event), (":content-type", "application/json"), (":message-type", "event")] {
        headers.push(k.len() as u8);
        headers.extend_from_slice(k.as_bytes());
        headers.push(7);
        headers.extend_from_slice(&(v.len() as u16).to_be_bytes());
        headers.extend_from_slice(v.as_bytes());
    }
    let total = 16 + headers.len() + payload.len();
    let mut f = Vec::with_capacity(total);
    f.extend_from_slice(&(total as u32).to_be_bytes());
    f.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&f);
    f.extend_from_slice(&prelude_crc.to_be_bytes());
    f.extend_from_slice(&headers);
    f.extend_from_slice(payload.as_bytes());
    let crc = crc32fast::hash(&f);
    f.extend_from_slice(&crc.to_be_bytes());
    f
}

/// The string-valued headers of an event-stream frame (other value types are skipped).
fn parse_headers(mut h: &[u8]) -> Vec<(&str, String)> {
    let mut out = Vec::new();
    while let Some((&name_len, rest)) = h.split_first() {
        let name_len = name_len as usize;
        if rest.len() < name_len + 1 {
            break;
        }
        let name = std::str::from_utf8(&rest[..name_len]).unwrap_or("");
        let kind = rest[name_len];
        let rest = &rest[name_len + 1..];
        let fixed = match kind {
            0 | 1 => Some(0),
            2 => Some(1),
            3 => Some(2),
            4 => Some(4),
            5 | 8 => Some(8),
            9 => Some(16),
            _ => None,
        };
        match fixed {
            Some(n) if rest.len() >= n => h = &rest[n..],
            None if rest.len() >= 2 => {
                let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                if rest.len() < 2 + len {
                    break;
                }
                if kind == 7 {
                    out.push((name, String::from_utf8_lossy(&rest[2..2 + len]).into_owned()));
                }
                h = &rest[2 + len..];
            }
            _ => break,
        }
    }
    out
}

impl Decoder {
    pub fn new(framing: Framing) -> Decoder {
        Decoder {
            framing,
            buf: Vec::new(),
            after_cr: false,
            name: None,
            data: String::new(),
            has_data: false,
            poisoned: false,
        }
    }

    /// Feed bytes; complete events are pushed to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Event>) {
        if self.framing == Framing::AwsEventstream {
            if self.poisoned {
                return;
            }
            self.buf.extend_from_slice(bytes);
            self.frames(out);
            return;
        }
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
        if self.framing == Framing::AwsEventstream {
            // An incomplete frame is dropped; the stream rules then see a stream without its end.
            self.buf.clear();
            return;
        }
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.line(&line, out);
        }
        self.dispatch(out);
    }

    /// Cut complete AWS event-stream frames off the buffer. A frame whose checksums do not match
    /// ends decoding: what follows it cannot be trusted.
    fn frames(&mut self, out: &mut Vec<Event>) {
        let mut at = 0;
        while self.buf.len() - at >= 12 {
            let b = &self.buf[at..];
            let total = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
            let headers_len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
            let prelude_crc = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
            if crc32fast::hash(&b[..8]) != prelude_crc || total < 16 + headers_len {
                self.buf.clear();
                self.poisoned = true;
                return;
            }
            if b.len() < total {
                break;
            }
            let frame = &b[..total];
            let crc = u32::from_be_bytes([frame[total - 4], frame[total - 3], frame[total - 2], frame[total - 1]]);
            if crc32fast::hash(&frame[..total - 4]) != crc {
                self.buf.clear();
                self.poisoned = true;
                return;
            }
            let headers = &frame[12..12 + headers_len];
            let payload = &frame[12 + headers_len..total - 4];
            let mut name = None;
            let mut kind = None;
            for (k, v) in parse_headers(headers) {
                match k {
                    ":event-type" | ":exception-type" => name = Some(v),
                    ":message-type" => kind = Some(v),
                    _ => {}
                }
            }
            let name = match kind.as_deref() {
                Some("exception") | Some("error") => name.or(Some("exception".into())),
                _ => name,
            };
            out.push(Event { name, data: String::from_utf8_lossy(payload).into_owned() });
            at += total;
        }
        self.buf.drain(..at);
    }

    fn line(&mut self, raw: &[u8], out: &mut Vec<Event>) {
        if self.poisoned {
            return;
        }
        let line = String::from_utf8_lossy(raw);
        match self.framing {
            Framing::AwsEventstream => {}
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
    fn aws_eventstream_frames_survive_any_split() {
        let mut input = encode_aws_frame("messageStart", r#"{"role":"assistant"}"#);
        input.extend(encode_aws_frame("contentBlockDelta", r#"{"delta":{"text":"hé"},"contentBlockIndex":0}"#));
        for piece in 1..input.len() {
            let out = decode_in_pieces(Framing::AwsEventstream, &input, piece);
            assert_eq!(out.len(), 2, "piece {piece}");
            assert_eq!(out[0].name.as_deref(), Some("messageStart"));
            assert_eq!(out[1].name.as_deref(), Some("contentBlockDelta"));
            assert!(out[1].data.contains("contentBlockIndex"));
        }
    }

    #[test]
    fn aws_eventstream_stops_at_a_corrupt_frame() {
        let mut input = encode_aws_frame("a", "{}");
        let mut bad = encode_aws_frame("b", "{}");
        let n = bad.len();
        bad[n - 1] ^= 0xff;
        input.extend(bad);
        input.extend(encode_aws_frame("c", "{}"));
        let out = decode_in_pieces(Framing::AwsEventstream, &input, 5);
        let names: Vec<_> = out.iter().map(|e| e.name.clone().unwrap()).collect();
        assert_eq!(names, vec!["a"]);
    }

    #[test]
    fn ndjson_lines() {
        let out = decode_in_pieces(Framing::Ndjson, b"{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}", 2);
        let data: Vec<&str> = out.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, vec!["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
    }
}
