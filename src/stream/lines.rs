//! Lines of a text framing, cut from bytes however they arrive: `\n`, `\r\n` or `\r` ends a
//! line, and a line longer than the limit is an error rather than an ever-growing buffer.

use super::FramingError;

pub(super) struct Lines {
    buf: Vec<u8>,
    /// The last byte seen was a `\r`, so a `\n` right after it ends no second line.
    after_cr: bool,
    max: usize,
}

impl Lines {
    pub fn new(max: usize) -> Lines {
        Lines { buf: Vec::new(), after_cr: false, max }
    }

    /// Call `line` for every line these bytes complete.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        mut line: impl FnMut(&[u8]) -> Result<(), FramingError>,
    ) -> Result<(), FramingError> {
        let mut start = 0;
        // A `\n` right after a `\r` that ended the previous piece ends no second line.
        if self.after_cr && bytes.first() == Some(&b'\n') {
            start = 1;
        }
        self.after_cr = false;
        while let Some(off) = memchr::memchr2(b'\n', b'\r', &bytes[start..]) {
            let i = start + off;
            if self.buf.is_empty() {
                self.check(i - start)?;
                line(&bytes[start..i])?;
            } else {
                self.buf.extend_from_slice(&bytes[start..i]);
                self.check(self.buf.len())?;
                let whole = std::mem::take(&mut self.buf);
                line(&whole)?;
                self.buf = whole;
                self.buf.clear();
            }
            start = i + 1;
            if bytes[i] == b'\r' {
                match bytes.get(start) {
                    Some(b'\n') => start += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.buf.extend_from_slice(&bytes[start..]);
        self.check(self.buf.len())
    }

    /// The rest, when the input ended without a line end.
    pub fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    fn check(&self, len: usize) -> Result<(), FramingError> {
        if len > self.max {
            return Err(FramingError(format!("the upstream sent a line longer than {} bytes", self.max)));
        }
        Ok(())
    }
}
