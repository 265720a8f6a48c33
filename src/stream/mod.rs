//! Streams: framings cut upstream bytes into events ([`decode`]); the event rules of a mapping
//! turn each event into canonical chunks as it arrives ([`StreamTranslator`]). Nothing waits for
//! the end of a stream.

pub mod decode;
pub mod rules;

pub use rules::StreamTranslator;
