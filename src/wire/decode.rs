//! Frame -> [`Message`]: the positional layout of every message type (digest §2), written once
//! over the [`Source`] trait that the JSON, MessagePack and CBOR readers implement, so every
//! serializer shares the same rules and error texts.
//!
//! Only the header is decoded; Arguments/ArgumentsKw are validated while skipped and kept as a
//! [`Payload`] span of the frame.

use std::borrow::Cow;

use super::cbor::CborReader;
use super::json::JsonReader;
use super::message::{code::*, code_name, Message, Payload};
use super::msgpack::MsgPackReader;
use super::value::Dict;
use super::{is_valid_id, options, DecodeError, Fail, MAX_ID};
use crate::serializer::Serializer;

/// The element-level view of a message array that the layout code needs.
pub(crate) trait Source<'a> {
    /// Enters the top-level array.
    fn open(&mut self) -> Result<(), Fail>;
    /// The next element as a non-negative integer.
    fn uint(&mut self) -> Result<u64, Fail>;
    /// The next element as a string.
    fn string(&mut self) -> Result<Cow<'a, str>, Fail>;
    /// The next element as an Options/Details dict (null/undefined values dropped).
    fn dict(&mut self) -> Result<Dict<'a>, Fail>;
    /// Whether another element follows.
    fn has_more(&mut self) -> Result<bool, Fail>;
    /// Moves to the next element (past a separator, counting it down).
    fn next_element(&mut self) -> Result<(), Fail>;
    /// What the element at the cursor is, without consuming it.
    fn peek_element(&self) -> Element;
    /// Skips the element at the cursor, validating it.
    fn skip_element(&mut self) -> Result<(), Fail>;
    /// The cursor's offset.
    fn position(&self) -> usize;
    /// The bytes from `start` to the cursor.
    fn span(&self, start: usize) -> &'a [u8];
    /// The serializer the reader reads.
    const SERIALIZER: Serializer;

    /// The remaining 0, 1 or 2 elements as a payload span: Arguments (a list, or one binary
    /// element: a transparent payload), then ArgumentsKw (a dict).
    #[inline(always)]
    fn payload(&mut self) -> Result<Payload<'a>, Fail> {
        if !self.has_more()? {
            return Ok(Payload::empty(Self::SERIALIZER));
        }
        self.next_element()?;
        let start = self.position();
        let binary = match self.peek_element() {
            Element::List => false,
            // Transparent payload: binary, or (as some vectors show) any string.
            Element::Binary => true,
            _ => return Err(Fail::bad("Arguments must be a list or a binary payload")),
        };
        self.skip_element()?;
        let mut count = 1;
        if self.has_more()? {
            if binary {
                return Err(Fail::bad(
                    "a binary (transparent) payload cannot be followed by ArgumentsKw",
                ));
            }
            self.next_element()?;
            if self.peek_element() != Element::Dict {
                return Err(Fail::bad("ArgumentsKw must be a dict"));
            }
            self.skip_element()?;
            count = 2;
        }
        Ok(Payload {
            ser: Self::SERIALIZER,
            count,
            raw: self.span(start),
        })
    }
    /// Leaves the array; nothing may follow it.
    fn close(&mut self) -> Result<(), Fail>;
}

/// What a payload element is, as far as the payload rules care.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Element {
    List,
    /// Binary, or a string (JSON's binary is a string).
    Binary,
    Dict,
    Other,
}

/// Decodes one frame. The message borrows from `frame`.
pub fn decode(ser: Serializer, frame: &[u8]) -> Result<Message<'_>, DecodeError> {
    match ser {
        Serializer::Json => decode_from(JsonReader::new(frame)),
        Serializer::MsgPack => decode_from(MsgPackReader::new(frame)),
        Serializer::Cbor => decode_from(CborReader::new(frame)),
    }
}

/// Names the message in errors and maps low-level failures to texts naming the field.
///
/// Its helpers and the `Source` element readers are `#[inline(always)]`: measured ~10-15%
/// faster header decoding, because the reader state and results then stay in registers
/// instead of round-tripping through the stack of the large per-type `match`.
///
/// The message's name is looked up only when an error needs it: on the hot path it would cost
/// a lookup and a string comparison per frame.
#[derive(Copy, Clone)]
struct Ctx {
    code: u64,
}

impl Ctx {
    fn name(self) -> &'static str {
        code_name(self.code)
    }

    #[cold]
    fn fail(self, field: &str, expected: &str, fail: Fail) -> DecodeError {
        let name = self.name();
        let message = match fail {
            Fail::WrongType => format!("{name}: {field} must be {expected}"),
            Fail::Missing => format!("{name}: {field} is missing (too few elements)"),
            Fail::Bad(text) if field.is_empty() => format!("{name}: {text}"),
            Fail::Bad(text) => format!("{name}: {field}: {text}"),
        };
        DecodeError {
            code: Some(self.code),
            message,
        }
    }

    #[inline(always)]
    fn id<'a, S: Source<'a>>(self, s: &mut S, field: &str) -> Result<u64, DecodeError> {
        match s.uint() {
            Ok(id) if is_valid_id(id) => Ok(id),
            Ok(_) => Err(self.fail(field, ID_RANGE, Fail::WrongType)),
            Err(fail) => Err(self.fail(field, ID_RANGE, fail)),
        }
    }

    #[inline(always)]
    fn uint<'a, S: Source<'a>>(self, s: &mut S, field: &str) -> Result<u64, DecodeError> {
        s.uint()
            .map_err(|f| self.fail(field, "a non-negative integer", f))
    }

    #[inline(always)]
    fn string<'a, S: Source<'a>>(
        self,
        s: &mut S,
        field: &str,
    ) -> Result<Cow<'a, str>, DecodeError> {
        s.string().map_err(|f| self.fail(field, "a string", f))
    }

    /// Options/Details/Extra, with the known keys type-checked.
    #[inline(always)]
    fn dict<'a, S: Source<'a>>(self, s: &mut S, field: &str) -> Result<Dict<'a>, DecodeError> {
        let dict = s.dict().map_err(|f| self.fail(field, "a dict", f))?;
        if !dict.is_empty() {
            options::check(self.code, self.name(), field, &dict).map_err(|message| {
                DecodeError {
                    code: Some(self.code),
                    message,
                }
            })?;
        }
        Ok(dict)
    }

    #[inline(always)]
    fn payload<'a, S: Source<'a>>(self, s: &mut S) -> Result<Payload<'a>, DecodeError> {
        s.payload().map_err(|f| self.fail("", "", f))
    }

    #[inline(always)]
    fn close<'a, S: Source<'a>>(self, s: &mut S) -> Result<(), DecodeError> {
        s.close().map_err(|f| self.fail("", "", f))
    }
}

const ID_RANGE: &str = "an id in [1, 2^53]";

fn decode_from<'a, S: Source<'a>>(mut s: S) -> Result<Message<'a>, DecodeError> {
    s.open().map_err(|f| DecodeError {
        code: None,
        message: match f {
            Fail::Bad(text) => text.into_owned(),
            _ => "a message must be an array".to_owned(),
        },
    })?;
    let code = s.uint().map_err(|f| DecodeError {
        code: None,
        message: match f {
            Fail::Missing => "empty message array".to_owned(),
            Fail::WrongType => "the message type must be a non-negative integer".to_owned(),
            Fail::Bad(text) => text.into_owned(),
        },
    })?;
    // An unknown type is refused by the last arm of the `match` below.
    let c = Ctx { code };
    let s = &mut s;
    let message = match code {
        HELLO => Message::Hello {
            realm: c.string(s, "Realm")?,
            details: c.dict(s, "Details")?,
        },
        WELCOME => Message::Welcome {
            session: c.id(s, "Session")?,
            details: c.dict(s, "Details")?,
        },
        ABORT => Message::Abort {
            details: c.dict(s, "Details")?,
            reason: c.string(s, "Reason")?,
            payload: c.payload(s)?,
        },
        CHALLENGE => Message::Challenge {
            method: c.string(s, "AuthMethod")?,
            extra: c.dict(s, "Extra")?,
        },
        AUTHENTICATE => Message::Authenticate {
            signature: c.string(s, "Signature")?,
            extra: c.dict(s, "Extra")?,
        },
        GOODBYE => Message::Goodbye {
            details: c.dict(s, "Details")?,
            reason: c.string(s, "Reason")?,
        },
        ERROR => Message::Error {
            request_type: c.uint(s, "REQUEST.Type")?,
            request: c.id(s, "REQUEST.Request")?,
            details: c.dict(s, "Details")?,
            error: c.string(s, "Error")?,
            payload: c.payload(s)?,
        },
        PUBLISH => Message::Publish {
            request: c.id(s, "Request")?,
            options: c.dict(s, "Options")?,
            topic: c.string(s, "Topic")?,
            payload: c.payload(s)?,
        },
        PUBLISHED => Message::Published {
            request: c.id(s, "Request")?,
            publication: c.id(s, "Publication")?,
        },
        SUBSCRIBE => Message::Subscribe {
            request: c.id(s, "Request")?,
            options: c.dict(s, "Options")?,
            topic: c.string(s, "Topic")?,
        },
        SUBSCRIBED => Message::Subscribed {
            request: c.id(s, "Request")?,
            subscription: c.id(s, "Subscription")?,
        },
        UNSUBSCRIBE => Message::Unsubscribe {
            request: c.id(s, "Request")?,
            subscription: c.id(s, "Subscription")?,
        },
        UNSUBSCRIBED => {
            let (request, details) = revocable(c, s)?;
            Message::Unsubscribed { request, details }
        }
        EVENT => Message::Event {
            subscription: c.id(s, "Subscription")?,
            publication: c.id(s, "Publication")?,
            details: c.dict(s, "Details")?,
            payload: c.payload(s)?,
        },
        CALL => Message::Call {
            request: c.id(s, "Request")?,
            options: c.dict(s, "Options")?,
            procedure: c.string(s, "Procedure")?,
            payload: c.payload(s)?,
        },
        CANCEL => Message::Cancel {
            request: c.id(s, "Request")?,
            options: c.dict(s, "Options")?,
        },
        RESULT => Message::Result {
            request: c.id(s, "Request")?,
            details: c.dict(s, "Details")?,
            payload: c.payload(s)?,
        },
        REGISTER => Message::Register {
            request: c.id(s, "Request")?,
            options: c.dict(s, "Options")?,
            procedure: c.string(s, "Procedure")?,
        },
        REGISTERED => Message::Registered {
            request: c.id(s, "Request")?,
            registration: c.id(s, "Registration")?,
        },
        UNREGISTER => Message::Unregister {
            request: c.id(s, "Request")?,
            registration: c.id(s, "Registration")?,
        },
        UNREGISTERED => {
            let (request, details) = revocable(c, s)?;
            Message::Unregistered { request, details }
        }
        INVOCATION => Message::Invocation {
            request: c.id(s, "Request")?,
            registration: c.id(s, "Registration")?,
            details: c.dict(s, "Details")?,
            payload: c.payload(s)?,
        },
        INTERRUPT => Message::Interrupt {
            request: c.id(s, "Request")?,
            options: c.dict(s, "Options")?,
        },
        YIELD => Message::Yield {
            request: c.id(s, "Request")?,
            options: c.dict(s, "Options")?,
            payload: c.payload(s)?,
        },
        EVENT_RECEIVED => Message::EventReceived {
            publication: c.id(s, "Publication")?,
            payload: c.payload(s)?,
        },
        _ => {
            return Err(DecodeError {
                code: Some(code),
                message: format!("unknown message type {code}"),
            })
        }
    };
    c.close(s)?;
    Ok(message)
}

/// UNSUBSCRIBED / UNREGISTERED: `[code, Request|id]` or the revocation form
/// `[code, 0, Details|dict]` (request 0 is only allowed together with Details).
fn revocable<'a, S: Source<'a>>(c: Ctx, s: &mut S) -> Result<(u64, Option<Dict<'a>>), DecodeError> {
    let request = c.uint(s, "Request")?;
    if request > MAX_ID {
        return Err(c.fail("Request", ID_RANGE, Fail::WrongType));
    }
    let has_details = s.has_more().map_err(|f| c.fail("Details", "a dict", f))?;
    if !has_details {
        if request == 0 {
            return Err(c.fail(
                "Request",
                "an id in [1, 2^53] (0 only in the revocation form with Details)",
                Fail::WrongType,
            ));
        }
        return Ok((request, None));
    }
    Ok((request, Some(c.dict(s, "Details")?)))
}

impl<'a> JsonReader<'a> {
    /// Moves to the next element of the message array, consuming the `,` before it.
    #[inline(always)]
    fn next_element(&mut self) -> Result<(), Fail> {
        self.skip_ws();
        if self.elements > 0 {
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        return Err(self.bad("trailing comma"));
                    }
                }
                Some(b']') => return Err(Fail::Missing),
                _ => return Err(self.bad("expected ',' or ']'")),
            }
        } else if self.peek() == Some(b']') {
            return Err(Fail::Missing);
        }
        self.elements += 1;
        Ok(())
    }
}

impl<'a> Source<'a> for JsonReader<'a> {
    fn open(&mut self) -> Result<(), Fail> {
        self.skip_ws();
        if self.peek() != Some(b'[') {
            return Err(Fail::bad("a message must be a JSON array"));
        }
        self.pos += 1;
        Ok(())
    }

    #[inline(always)]
    fn uint(&mut self) -> Result<u64, Fail> {
        self.next_element()?;
        self.read_uint()
    }

    #[inline(always)]
    fn string(&mut self) -> Result<Cow<'a, str>, Fail> {
        self.next_element()?;
        if self.peek() != Some(b'"') {
            return Err(Fail::WrongType);
        }
        self.read_str()
    }

    #[inline(always)]
    fn dict(&mut self) -> Result<Dict<'a>, Fail> {
        self.next_element()?;
        if self.peek() != Some(b'{') {
            return Err(Fail::WrongType);
        }
        self.read_object(2, true)
    }

    fn has_more(&mut self) -> Result<bool, Fail> {
        self.skip_ws();
        Ok(self.peek() != Some(b']'))
    }

    #[inline(always)]
    fn next_element(&mut self) -> Result<(), Fail> {
        JsonReader::next_element(self)
    }

    #[inline(always)]
    fn peek_element(&self) -> Element {
        match self.peek() {
            Some(b'[') => Element::List,
            Some(b'"') => Element::Binary,
            Some(b'{') => Element::Dict,
            _ => Element::Other,
        }
    }

    #[inline(always)]
    fn skip_element(&mut self) -> Result<(), Fail> {
        self.skip_value(2)
    }

    #[inline(always)]
    fn position(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    fn span(&self, start: usize) -> &'a [u8] {
        &self.buf[start..self.pos]
    }

    const SERIALIZER: Serializer = Serializer::Json;

    fn close(&mut self) -> Result<(), Fail> {
        self.skip_ws();
        match self.peek() {
            Some(b']') => self.pos += 1,
            Some(b',') => return Err(Fail::bad("too many elements")),
            _ => return Err(self.bad("expected ']'")),
        }
        self.skip_ws();
        if self.pos != self.buf.len() {
            return Err(self.bad("trailing bytes after the message"));
        }
        Ok(())
    }
}

impl<'a> MsgPackReader<'a> {
    #[inline(always)]
    fn next_element(&mut self) -> Result<(), Fail> {
        if self.remaining == 0 {
            return Err(Fail::Missing);
        }
        self.remaining -= 1;
        Ok(())
    }
}

impl<'a> Source<'a> for MsgPackReader<'a> {
    fn open(&mut self) -> Result<(), Fail> {
        self.remaining = match self.array_header() {
            Ok(n) => n,
            Err(Fail::WrongType) => return Err(Fail::bad("a message must be a MessagePack array")),
            Err(other) => return Err(other),
        };
        Ok(())
    }

    #[inline(always)]
    fn uint(&mut self) -> Result<u64, Fail> {
        self.next_element()?;
        self.read_uint()
    }

    #[inline(always)]
    fn string(&mut self) -> Result<Cow<'a, str>, Fail> {
        self.next_element()?;
        self.read_str()
    }

    #[inline(always)]
    fn dict(&mut self) -> Result<Dict<'a>, Fail> {
        self.next_element()?;
        match self.map_header()? {
            0 => Ok(Dict::new()),
            len => self.map_body(len, 2, true),
        }
    }

    fn has_more(&mut self) -> Result<bool, Fail> {
        Ok(self.remaining > 0)
    }

    #[inline(always)]
    fn next_element(&mut self) -> Result<(), Fail> {
        MsgPackReader::next_element(self)
    }

    #[inline(always)]
    fn peek_element(&self) -> Element {
        if self.peek_is_array() {
            Element::List
        } else if self.peek_is_bin_or_str() {
            Element::Binary
        } else if self.peek_is_map() {
            Element::Dict
        } else {
            Element::Other
        }
    }

    #[inline(always)]
    fn skip_element(&mut self) -> Result<(), Fail> {
        self.skip_value(2)
    }

    #[inline(always)]
    fn position(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    fn span(&self, start: usize) -> &'a [u8] {
        &self.buf[start..self.pos]
    }

    const SERIALIZER: Serializer = Serializer::MsgPack;

    fn close(&mut self) -> Result<(), Fail> {
        if self.remaining > 0 {
            return Err(Fail::bad("too many elements"));
        }
        if self.pos != self.buf.len() {
            return Err(self.bad("trailing bytes after the message"));
        }
        Ok(())
    }
}

/// CBOR major types the payload check needs.
const CBOR_BYTES: u8 = 2;
const CBOR_TEXT: u8 = 3;
const CBOR_ARRAY: u8 = 4;
const CBOR_MAP: u8 = 5;

impl<'a> CborReader<'a> {
    /// Moves to the next element of the message array (a definite one counts down; an
    /// indefinite one has another element unless a break comes).
    #[inline(always)]
    fn next_element(&mut self) -> Result<(), Fail> {
        match &mut self.remaining {
            Some(0) => Err(Fail::Missing),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => match self.peek() {
                Some(0xff) => Err(Fail::Missing),
                Some(_) => Ok(()),
                None => Err(self.bad("unexpected end of input (missing break)")),
            },
        }
    }
}

impl<'a> Source<'a> for CborReader<'a> {
    fn open(&mut self) -> Result<(), Fail> {
        self.remaining = match self.container_header(CBOR_ARRAY) {
            Ok(n) => n,
            Err(Fail::WrongType) => return Err(Fail::bad("a message must be a CBOR array")),
            Err(other) => return Err(other),
        };
        Ok(())
    }

    #[inline(always)]
    fn uint(&mut self) -> Result<u64, Fail> {
        self.next_element()?;
        self.read_uint()
    }

    #[inline(always)]
    fn string(&mut self) -> Result<Cow<'a, str>, Fail> {
        self.next_element()?;
        self.read_str()
    }

    #[inline(always)]
    fn dict(&mut self) -> Result<Dict<'a>, Fail> {
        self.next_element()?;
        match self.container_header(CBOR_MAP)? {
            Some(0) => Ok(Dict::new()),
            len => self.map_body(len, 2, true),
        }
    }

    fn has_more(&mut self) -> Result<bool, Fail> {
        Ok(match self.remaining {
            Some(n) => n > 0,
            None => self.peek().is_some_and(|b| b != 0xff),
        })
    }

    #[inline(always)]
    fn next_element(&mut self) -> Result<(), Fail> {
        CborReader::next_element(self)
    }

    #[inline(always)]
    fn peek_element(&self) -> Element {
        match self.peek_major() {
            Some(CBOR_ARRAY) => Element::List,
            Some(CBOR_BYTES | CBOR_TEXT) => Element::Binary,
            Some(CBOR_MAP) => Element::Dict,
            _ => Element::Other,
        }
    }

    #[inline(always)]
    fn skip_element(&mut self) -> Result<(), Fail> {
        self.skip_value(2)
    }

    #[inline(always)]
    fn position(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    fn span(&self, start: usize) -> &'a [u8] {
        &self.buf[start..self.pos]
    }

    const SERIALIZER: Serializer = Serializer::Cbor;

    fn close(&mut self) -> Result<(), Fail> {
        match self.remaining {
            Some(0) => {}
            Some(_) => return Err(Fail::bad("too many elements")),
            None => match self.peek() {
                Some(0xff) => self.pos += 1,
                Some(_) => return Err(Fail::bad("too many elements")),
                None => return Err(self.bad("unexpected end of input (missing break)")),
            },
        }
        if self.pos != self.buf.len() {
            return Err(self.bad("trailing bytes after the message"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode, Value, MAX_ID};

    fn json(text: &str) -> Result<Message<'_>, DecodeError> {
        decode(Serializer::Json, text.as_bytes())
    }

    fn json_err(text: &str) -> String {
        match json(text) {
            Ok(msg) => panic!("{text} must fail, got {msg:?}"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn three_arities() {
        for (text, count) in [
            (r#"[48,1,{},"a.b"]"#, 0),
            (r#"[48,1,{},"a.b",[1,"x"]]"#, 1),
            (r#"[48, 1, {}, "a.b", [], {"k": [1]} ]"#, 2),
        ] {
            let Message::Call { payload, .. } = json(text).unwrap() else {
                panic!()
            };
            assert_eq!(payload.count, count, "{text}");
        }
        let Message::Call { payload, .. } = json(r#"[48,1,{},"a.b" , [1] , {"k":2} ]"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(payload.raw, br#"[1] , {"k":2}"#);
        assert!(json_err(r#"[48,1,{},"a.b",[],{},[]]"#).contains("too many elements"));
        assert!(json_err(r#"[48,1,{},"a.b",{}]"#).contains("Arguments must be a list"));
        assert!(json_err(r#"[48,1,{},"a.b",[],[]]"#).contains("ArgumentsKw must be a dict"));
        assert!(json_err(r#"[48,1,{},"a.b","\u0000AA==",{}]"#).contains("binary"));
        assert!(json_err(r#"[48,1,{}]"#).contains("CALL: Procedure is missing"));
    }

    #[test]
    fn ids_are_integers_in_range() {
        assert!(json(&format!(r#"[48,{MAX_ID},{{}},"a"]"#)).is_ok());
        assert_eq!(
            json_err(r#"[48,0,{},"a"]"#),
            "CALL: Request must be an id in [1, 2^53]"
        );
        assert!(
            json_err(&format!(r#"[48,{},{{}},"a"]"#, MAX_ID + 1)).contains("Request must be an id")
        );
        assert!(json_err(r#"[48,1.0,{},"a"]"#).contains("Request must be an id"));
        assert!(json_err(r#"[48,1e3,{},"a"]"#).contains("Request must be an id"));
        assert!(json_err(r#"[48,-1,{},"a"]"#).contains("Request must be an id"));
        assert!(json_err(r#"[48,-0,{},"a"]"#).contains("Request must be an id"));
        assert!(json_err(r#"[48,true,{},"a"]"#).contains("Request must be an id"));
        assert!(json_err(r#"[48,"1",{},"a"]"#).contains("Request must be an id"));
        assert!(
            json_err(r#"[48,99999999999999999999999,{},"a"]"#).contains("Request must be an id")
        );
        assert!(json(r#"[48,01,{},"a"]"#).is_err(), "leading zero");
        assert!(json(r#"[48,+1,{},"a"]"#).is_err());
        // msgpack: every integer width, signed encodings of non-negative values included.
        for id_bytes in [
            &[0x05][..],
            &[0xcc, 0x05],
            &[0xcd, 0, 5],
            &[0xce, 0, 0, 0, 5],
            &[0xd0, 5],
            &[0xd3, 0, 0, 0, 0, 0, 0, 0, 5],
        ] {
            let mut frame = vec![0x94, 0x30];
            frame.extend_from_slice(id_bytes);
            frame.extend_from_slice(&[0x80, 0xa1, b'a']);
            let msg = decode(Serializer::MsgPack, &frame).unwrap();
            assert!(
                matches!(msg, Message::Call { request: 5, .. }),
                "{frame:x?}"
            );
        }
        let frame = [0x94, 0x30, 0xc3, 0x80, 0xa1, b'a'];
        assert!(
            decode(Serializer::MsgPack, &frame).is_err(),
            "bool is not an id"
        );
        let frame = [
            0x94, 0x30, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x80, 0xa1, b'a',
        ];
        assert!(
            decode(Serializer::MsgPack, &frame).is_err(),
            "float is not an id"
        );
    }

    #[test]
    fn options_types_are_checked() {
        assert!(json_err(r#"[16,1,{"acknowledge":1},"t"]"#)
            .contains("PUBLISH.Options.acknowledge must be a bool"));
        assert!(json_err(r#"[48,1,{"receive_progress":"yes"},"p"]"#).contains("receive_progress"));
        assert!(json_err(r#"[48,1,{"timeout":-1},"p"]"#).contains("timeout"));
        assert!(json_err(r#"[48,1,{"timeout":1.5},"p"]"#).contains("timeout"));
        // Refused by the router with ERROR invalid_argument, not here.
        assert!(json(r#"[64,1,{"invoke":"sometimes"},"p"]"#).is_ok());
        assert!(json_err(r#"[49,1,{"mode":"explode"}]"#).contains("mode"));
        assert!(json_err(r#"[70,1,{"progress":0}]"#).contains("progress"));
        assert!(json(r#"[16,1,{"acknowledge":true,"x_custom":1},"t"]"#).is_ok());
    }

    #[test]
    fn null_and_undefined_options_are_absent() {
        let Message::Publish { options, .. } =
            json(r#"[16,1,{"acknowledge":null,"a":{"b":null}},"t"]"#).unwrap()
        else {
            panic!()
        };
        assert!(!options.contains_key("acknowledge"));
        assert_eq!(options.get_dict("a").unwrap().get("b"), Some(&Value::Null));
        // [16, 1, {"acknowledge": nil, "exclude_me": undefined, "retain": true}, "t"]
        let mut frame = vec![0x94, 0x10, 0x01, 0x83];
        frame.extend_from_slice(&[0xab]);
        frame.extend_from_slice(b"acknowledge");
        frame.push(0xc0);
        frame.extend_from_slice(&[0xaa]);
        frame.extend_from_slice(b"exclude_me");
        frame.extend_from_slice(&[0xd4, 0x00, 0x00]);
        frame.extend_from_slice(&[0xa6]);
        frame.extend_from_slice(b"retain");
        frame.push(0xc3);
        frame.extend_from_slice(&[0xa1, b't']);
        let Message::Publish { options, .. } = decode(Serializer::MsgPack, &frame).unwrap() else {
            panic!()
        };
        assert_eq!(options.len(), 1);
        assert_eq!(options.get_bool("retain"), Some(true));
    }

    #[test]
    fn structure_errors() {
        assert_eq!(json_err("[]"), "empty message array");
        assert!(json_err("{}").contains("array"));
        assert!(json_err("").contains("array"));
        assert_eq!(json_err("[99,1]"), "unknown message type 99");
        assert!(json_err(r#"[32,1,{},"t"] x"#).contains("trailing bytes"));
        assert!(
            json(" [32,1,{},\"t\"]\n ").is_ok(),
            "surrounding whitespace is fine"
        );
        assert!(json_err(r#"[48,1,{},"t",]"#).contains("trailing comma"));
        assert!(json_err(r#"[32,1,{},"t",]"#).contains("too many elements"));
        assert!(json_err(r#"[32,1,{"a":1,"a":2},"t"]"#).contains("duplicate key"));
        let deep = format!(r#"[48,1,{{}},"p",{}{}]"#, "[".repeat(80), "]".repeat(80));
        assert!(json_err(&deep).contains("nesting too deep"));
        assert!(decode(Serializer::MsgPack, &[0x93, 0x20, 0x01]).is_err());
        assert!(decode(Serializer::MsgPack, &[0x93, 0x22, 0x01, 0x02, 0x00])
            .unwrap_err()
            .message
            .contains("trailing"));
        assert!(decode(Serializer::MsgPack, &[]).is_err());
        assert!(decode(Serializer::MsgPack, &[0x90])
            .unwrap_err()
            .message
            .contains("empty"));
    }

    #[test]
    fn strings_escapes_and_utf8() {
        let Message::Subscribe { topic, .. } = json(r#"[32,1,{},"com.\u00e9x\/a"]"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(topic, "com.éx/a");
        assert!(matches!(topic, Cow::Owned(_)));
        let Message::Subscribe { topic, .. } = json(r#"[32,1,{},"com.plain"]"#).unwrap() else {
            panic!()
        };
        assert!(matches!(topic, Cow::Borrowed("com.plain")));
        assert!(decode(Serializer::Json, b"[32,1,{},\"com.\xc3\x28\"]").is_err());
        assert!(decode(Serializer::Json, b"[32,1,{\"\xff\":1},\"t\"]").is_err());
        assert!(decode(Serializer::Json, b"[32,1,{},\"t\"]\xff").is_err());
        assert!(decode(
            Serializer::MsgPack,
            &[0x94, 0x20, 0x01, 0x80, 0xa2, 0xc3, 0x28]
        )
        .is_err());
        assert!(json_err(r#"[32,1,{},5]"#).contains("SUBSCRIBE: Topic must be a string"));
    }

    #[test]
    fn revocation_forms() {
        assert!(matches!(
            json("[67,5]").unwrap(),
            Message::Unregistered {
                request: 5,
                details: None
            }
        ));
        let Message::Unregistered {
            request: 0,
            details: Some(d),
        } = json(r#"[67,0,{"registration":7,"reason":"x"}]"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(d.get_u64("registration"), Some(7));
        assert!(json_err("[67,0]").contains("Request"));
        assert!(json_err(r#"[35,0,{"subscription":true}]"#).contains("subscription"));
        assert!(matches!(
            json("[35,0,{}]").unwrap(),
            Message::Unsubscribed {
                request: 0,
                details: Some(_)
            }
        ));
    }

    #[test]
    fn error_request_type_is_any_uint() {
        let Message::Error { request_type, .. } = json(r#"[8,1000,2,{},"e.x"]"#).unwrap() else {
            panic!()
        };
        assert_eq!(request_type, 1000);
        assert!(json_err(r#"[8,-1,2,{},"e.x"]"#).contains("REQUEST.Type"));
    }

    #[test]
    fn json_payload_spliced_unchanged() {
        let frame = r#"[48, 7, {}, "com.a.add2", [23, 7], {"x": "\u00e9"}]"#;
        let Message::Call {
            request, payload, ..
        } = json(frame).unwrap()
        else {
            panic!()
        };
        let msg = Message::Invocation {
            request,
            registration: 9,
            details: Dict::new(),
            payload,
        };
        let mut out = Vec::new();
        encode(&msg, Serializer::Json, &mut out).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"[68,7,9,{},[23, 7], {"x": "\u00e9"}]"#
        );
        out.clear();
        encode(&msg, Serializer::MsgPack, &mut out).unwrap();
        let back = decode(Serializer::MsgPack, &out).unwrap();
        let Message::Invocation { payload, .. } = back else {
            panic!()
        };
        let (args, kwargs) = crate::wire::decode_payload_values(&payload).unwrap();
        assert_eq!(args, vec![Value::UInt(23), Value::UInt(7)]);
        assert_eq!(kwargs.unwrap().get_str("x"), Some("é"));
    }
}
