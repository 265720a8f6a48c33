//! Streams: a framing cuts upstream bytes into events ([`Framing`]: SSE, NDJSON or AWS event
//! stream, one module each), and the [`StreamTranslator`] runs a mapping's event rules on each
//! event as it arrives. Nothing waits for the end of a stream, and nothing grows without bound:
//! a line, an event or a frame larger than the limit ends the stream with an error.

mod aws_eventstream;
mod lines;
mod ndjson;
mod sse;
mod translator;

pub use translator::{StreamInput, StreamTranslator};

use crate::spec::Framing as FramingKind;

/// One upstream event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Event {
    /// The event's name (SSE `event:`, AWS `:event-type`), when it has one.
    pub name: Option<String>,
    pub data: String,
}

/// The upstream sent something the framing cannot accept; the stream cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FramingError(pub String);

/// Bounds on what one stream may buffer.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// The largest line, event or frame an upstream may send, in bytes.
    pub max_event_bytes: usize,
    /// The most entries a per-stream table (`enumerate`) may hold.
    pub max_table_entries: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits { max_event_bytes: 8 << 20, max_table_entries: 1024 }
    }
}

/// A decoder of one framing: bytes in, complete events out, however the bytes are split.
pub(crate) trait Framing: Send {
    /// Feed bytes; complete events are pushed to `out`.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<(), FramingError>;
    /// The upstream closed: flush a last event that had no terminator.
    fn finish(&mut self, out: &mut Vec<Event>) -> Result<(), FramingError>;
}

/// A decoder for `kind`, holding at most `max_event_bytes` of an incomplete event.
pub(crate) fn decoder(kind: FramingKind, max_event_bytes: usize) -> Box<dyn Framing> {
    match kind {
        FramingKind::Sse => Box::new(sse::Sse::new(max_event_bytes)),
        FramingKind::Ndjson => Box::new(ndjson::Ndjson::new(max_event_bytes)),
        FramingKind::AwsEventstream => Box::new(aws_eventstream::AwsEventStream::new(max_event_bytes)),
    }
}

/// One event in `kind`'s wire format, as an upstream sends it: how `lightport check` turns a
/// vector's `upstream_events.json` into the bytes a real upstream would send.
pub(crate) fn encode(kind: FramingKind, name: &str, data: &str) -> Vec<u8> {
    match kind {
        FramingKind::Sse => format!("event: {name}\ndata: {data}\n\n").into_bytes(),
        FramingKind::Ndjson => format!("{data}\n").into_bytes(),
        FramingKind::AwsEventstream => aws_eventstream::encode(name, data),
    }
}

#[cfg(test)]
pub(crate) fn decode_in_pieces(
    kind: FramingKind,
    max: usize,
    input: &[u8],
    piece: usize,
) -> Result<Vec<Event>, FramingError> {
    let mut d = decoder(kind, max);
    let mut out = Vec::new();
    for chunk in input.chunks(piece.max(1)) {
        d.feed(chunk, &mut out)?;
    }
    d.finish(&mut out)?;
    Ok(out)
}
