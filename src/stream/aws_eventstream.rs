//! AWS event streams (`application/vnd.amazon.eventstream`): binary frames of a prelude (total
//! and header lengths, CRC32), typed headers, a payload and a message CRC32. The event name is
//! the `:event-type` header (`:exception-type` for exceptions); the data is the payload.

use super::{Event, Framing, FramingError};

/// A frame's fixed overhead: prelude (12 bytes) and message CRC (4).
const OVERHEAD: usize = 16;

pub(super) struct AwsEventStream {
    buf: Vec<u8>,
    max: usize,
}

impl AwsEventStream {
    pub fn new(max: usize) -> AwsEventStream {
        AwsEventStream { buf: Vec::new(), max }
    }

    /// Cut every complete frame off the buffer.
    fn frames(&mut self, out: &mut Vec<Event>) -> Result<(), FramingError> {
        let mut at = 0;
        while self.buf.len() - at >= 12 {
            let b = &self.buf[at..];
            let total = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
            let headers_len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
            let prelude_crc = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
            if crc32fast::hash(&b[..8]) != prelude_crc || total < OVERHEAD + headers_len {
                return Err(FramingError("the upstream sent a corrupt event-stream frame".into()));
            }
            // The length is checked before any of the frame is buffered: a prelude may claim 4 GiB.
            if total > self.max {
                return Err(FramingError(format!("the upstream sent a frame larger than {} bytes", self.max)));
            }
            if b.len() < total {
                break;
            }
            let frame = &b[..total];
            let crc = u32::from_be_bytes([frame[total - 4], frame[total - 3], frame[total - 2], frame[total - 1]]);
            if crc32fast::hash(&frame[..total - 4]) != crc {
                return Err(FramingError("the upstream sent an event-stream frame whose checksum is wrong".into()));
            }
            out.push(event(&frame[12..12 + headers_len], &frame[12 + headers_len..total - 4]));
            at += total;
        }
        self.buf.drain(..at);
        Ok(())
    }
}

impl Framing for AwsEventStream {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<(), FramingError> {
        self.buf.extend_from_slice(bytes);
        self.frames(out)
    }

    fn finish(&mut self, _: &mut Vec<Event>) -> Result<(), FramingError> {
        // An incomplete frame is dropped; the stream rules then see a stream without its end.
        self.buf.clear();
        Ok(())
    }
}

fn event(headers: &[u8], payload: &[u8]) -> Event {
    let mut name = None;
    let mut kind = None;
    for (k, v) in string_headers(headers) {
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
    Event { name, data: String::from_utf8_lossy(payload).into_owned() }
}

/// The string-valued headers of a frame (other value types are skipped).
fn string_headers(mut h: &[u8]) -> Vec<(&str, String)> {
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

/// One frame as a service sends it: `:event-type`, `:content-type` and `:message-type` headers.
pub(super) fn encode(event: &str, payload: &str) -> Vec<u8> {
    let mut headers = Vec::new();
    for (k, v) in [(":event-type", event), (":content-type", "application/json"), (":message-type", "event")] {
        headers.push(k.len() as u8);
        headers.extend_from_slice(k.as_bytes());
        headers.push(7);
        headers.extend_from_slice(&(v.len() as u16).to_be_bytes());
        headers.extend_from_slice(v.as_bytes());
    }
    let total = OVERHEAD + headers.len() + payload.len();
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

#[cfg(test)]
mod tests {
    use super::encode;
    use crate::spec::Framing;
    use crate::stream::decode_in_pieces;

    #[test]
    fn frames_survive_any_split() {
        let mut input = encode("messageStart", r#"{"role":"assistant"}"#);
        input.extend(encode("contentBlockDelta", r#"{"delta":{"text":"hé"},"contentBlockIndex":0}"#));
        for piece in 1..input.len() {
            let out = decode_in_pieces(Framing::AwsEventstream, 1 << 20, &input, piece).unwrap();
            assert_eq!(out.len(), 2, "piece {piece}");
            assert_eq!(out[0].name.as_deref(), Some("messageStart"));
            assert_eq!(out[1].name.as_deref(), Some("contentBlockDelta"));
            assert!(out[1].data.contains("contentBlockIndex"));
        }
    }

    #[test]
    fn a_corrupt_frame_ends_the_stream() {
        let mut input = encode("a", "{}");
        let mut bad = encode("b", "{}");
        let n = bad.len();
        bad[n - 1] ^= 0xff;
        input.extend(bad);
        assert!(decode_in_pieces(Framing::AwsEventstream, 1 << 20, &input, 5).is_err());
    }

    #[test]
    fn a_prelude_claiming_a_huge_frame_is_refused_before_buffering() {
        let mut prelude = Vec::new();
        prelude.extend_from_slice(&u32::MAX.to_be_bytes());
        prelude.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32fast::hash(&prelude);
        prelude.extend_from_slice(&crc.to_be_bytes());
        assert!(decode_in_pieces(Framing::AwsEventstream, 1 << 20, &prelude, 12).is_err());
    }
}
