//! An encoded WAMP message on its way to a transport, as up to three parts written back to
//! back: a head the router encoded, a payload span forwarded from the frame it was received in
//! (a slice of that `Bytes`, not a copy), and a static tail (`]` for JSON). A transport writes
//! the parts straight into its output buffer, so a forwarded payload is copied once in user
//! space. Small payloads are simply part of the head: one buffer is cheaper than two then.

use bytes::Bytes;

/// A whole frame clones as one `Bytes` (fan-out clones it once per subscriber).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    head: Bytes,
    /// The forwarded span and the bytes after it, when the message is in parts. Boxed: only
    /// large forwarded payloads have them, and a small `Frame` keeps every router output small.
    rest: Option<Box<(Bytes, &'static [u8])>>,
}

impl Frame {
    /// A message encoded in one buffer.
    pub fn whole(bytes: Bytes) -> Frame {
        Frame {
            head: bytes,
            rest: None,
        }
    }

    /// `head`, then `span`, then `tail`.
    pub fn parts_of(head: Bytes, span: Bytes, tail: &'static [u8]) -> Frame {
        Frame {
            head,
            rest: Some(Box::new((span, tail))),
        }
    }

    /// The parts in order, for a transport's `send_message_parts`.
    pub fn parts(&self) -> [&[u8]; 3] {
        match self.rest.as_deref() {
            Some((span, tail)) => [&self.head, span, tail],
            None => [&self.head, &[], &[]],
        }
    }

    pub fn len(&self) -> usize {
        self.parts().iter().map(|part| part.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the message is one buffer (no forwarded span).
    pub fn is_whole(&self) -> bool {
        self.rest.is_none()
    }

    /// The message as one `Bytes`: the buffer itself when whole, else a copy of the parts.
    pub fn to_bytes(&self) -> Bytes {
        if self.is_whole() {
            return self.head.clone();
        }
        let mut bytes = Vec::with_capacity(self.len());
        for part in self.parts() {
            bytes.extend_from_slice(part);
        }
        Bytes::from(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_read_as_the_whole_message() {
        let frame = Frame::parts_of(
            Bytes::from_static(b"[50,1,{},"),
            Bytes::from_static(b"[1,2]"),
            b"]",
        );
        assert_eq!(frame.len(), 15);
        assert!(!frame.is_whole());
        assert_eq!(&frame.to_bytes()[..], b"[50,1,{},[1,2]]");
        let whole = Frame::whole(Bytes::from_static(b"[6,{},\"x\"]"));
        assert!(whole.is_whole());
        assert_eq!(
            whole.to_bytes().as_ptr(),
            whole.parts()[0].as_ptr(),
            "no copy"
        );
    }
}
