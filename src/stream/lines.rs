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
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\n' && self.after_cr {
                self.after_cr = false;
                start = i + 1;
                continue;
            }
            self.after_cr = b == b'\r';
            if b == b'\n' || b == b'\r' {
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
