//! Streaming frame splitter: TCP bytes in, whole BGP messages out.

use super::error::DecodeError;
use super::{check_header, HEADER_LEN};
use bytes::{Bytes, BytesMut};

/// Buffers a byte stream and cuts it into whole messages. A header error poisons the stream:
/// once the framing is lost nothing after it can be trusted, so the error repeats forever.
#[derive(Debug, Default)]
pub struct FrameSplitter {
    buf: BytesMut,
    poisoned: Option<DecodeError>,
}

impl FrameSplitter {
    /// An empty splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.poisoned.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Octets buffered but not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message (header included), `None` when more bytes are needed, or the
    /// header error that broke the stream.
    pub fn next_frame(&mut self) -> Option<Result<Bytes, DecodeError>> {
        if let Some(e) = &self.poisoned {
            return Some(Err(e.clone()));
        }
        if self.buf.len() < HEADER_LEN {
            return None;
        }
        match check_header(&self.buf[..HEADER_LEN]) {
            Err(e) => {
                self.buf.clear();
                self.poisoned = Some(e.clone());
                Some(Err(e))
            }
            Ok((len, _)) if self.buf.len() >= len => Some(Ok(self.buf.split_to(len).freeze())),
            Ok(_) => None,
        }
    }
}
