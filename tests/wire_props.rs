//! Property tests for the wire codec: random messages of every type round-trip through
//! encode/decode in each serializer and across serializers (payload transcoding keeps values,
//! binaries and unicode intact), CBOR in the forms other encoders write (indefinite lengths,
//! wide heads, half and single floats, chunked strings) reads as the same values and transcodes
//! to every serializer, and decoding arbitrary or mutated bytes never panics.

use proptest::collection::vec;
use proptest::prelude::*;
use wampring::wire::{
    decode, decode_payload_values, encode, encode_value, payload_from_args, payload_from_binary,
    transparent_payload, Dict, Message, OwnedPayload, Payload, Serializer, Value, MAX_ID,
};

/// Text with the characters that stress escaping: quotes, backslashes, control characters,
/// non-ASCII, astral-plane characters. Never starting with NUL: that is the JSON binary marker.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z\"\\\\/\n\t\u{0}-\u{1f}\u{7f}é中😀]{0,12}",
        "[a-z_.]{1,16}",
    ]
    .prop_filter("no leading NUL", |s| !s.starts_with('\0'))
}

fn dict_from(entries: Vec<(String, Value<'static>)>) -> Dict<'static> {
    let mut dict = Dict::new();
    for (key, value) in entries {
        dict.insert(key, value);
    }
    dict
}

fn leaf() -> impl Strategy<Value = Value<'static>> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::UInt),
        (i64::MIN..0i64).prop_map(Value::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float),
        text().prop_map(|s| Value::Str(s.into())),
        vec(any::<u8>(), 0..24).prop_map(|b| Value::Bin(b.into())),
    ]
}

fn value() -> impl Strategy<Value = Value<'static>> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::List),
            vec((text(), inner), 0..4).prop_map(|entries| Value::Dict(dict_from(entries))),
        ]
    })
}

/// Options/Details with implementation-specific keys (never spec-known ones, whose types are
/// checked) and no null values (null means absent there and is dropped on decode).
fn options() -> impl Strategy<Value = Dict<'static>> {
    vec(
        (
            "_[a-z0-9_]{3,8}",
            value().prop_filter("not null", |v| *v != Value::Null),
        ),
        0..3,
    )
    .prop_map(dict_from)
}

fn id() -> impl Strategy<Value = u64> {
    prop_oneof![1..=MAX_ID, Just(1u64), Just(MAX_ID), 1..1000u64]
}

#[derive(Clone, Debug)]
enum PayloadSpec {
    None,
    Args(Vec<Value<'static>>, Option<Dict<'static>>),
    Binary(Vec<u8>),
}

fn payload_spec() -> impl Strategy<Value = PayloadSpec> {
    prop_oneof![
        Just(PayloadSpec::None),
        (
            vec(value(), 0..4),
            proptest::option::of(vec((text(), value()), 0..4).prop_map(dict_from))
        )
            .prop_map(|(args, kwargs)| PayloadSpec::Args(args, kwargs)),
        vec(any::<u8>(), 0..64).prop_map(PayloadSpec::Binary),
    ]
}

fn build_payload(spec: &PayloadSpec, ser: Serializer) -> OwnedPayload {
    match spec {
        PayloadSpec::None => OwnedPayload::empty(ser),
        PayloadSpec::Args(args, kwargs) => payload_from_args(ser, args, kwargs.as_ref()).unwrap(),
        PayloadSpec::Binary(bytes) => payload_from_binary(ser, bytes),
    }
}

/// Everything a message of any type needs; `kind` picks the type.
#[derive(Clone, Debug)]
struct Spec {
    kind: usize,
    a: u64,
    b: u64,
    uri: String,
    dict: Dict<'static>,
    payload: PayloadSpec,
}

const KINDS: usize = 27;

fn spec() -> impl Strategy<Value = Spec> {
    (0..KINDS, id(), id(), text(), options(), payload_spec()).prop_map(
        |(kind, a, b, uri, dict, payload)| Spec {
            kind,
            a,
            b,
            uri,
            dict,
            payload,
        },
    )
}

fn build<'a>(s: &'a Spec, payload: Payload<'a>) -> Message<'a> {
    let uri = || s.uri.as_str().into();
    let dict = || s.dict.clone();
    match s.kind {
        0 => Message::Hello {
            realm: uri(),
            details: dict(),
        },
        1 => Message::Welcome {
            session: s.a,
            details: dict(),
        },
        2 => Message::Abort {
            details: dict(),
            reason: uri(),
            payload,
        },
        3 => Message::Challenge {
            method: uri(),
            extra: dict(),
        },
        4 => Message::Authenticate {
            signature: uri(),
            extra: dict(),
        },
        5 => Message::Goodbye {
            details: dict(),
            reason: uri(),
        },
        6 => Message::Error {
            request_type: s.b,
            request: s.a,
            details: dict(),
            error: uri(),
            payload,
        },
        7 => Message::Publish {
            request: s.a,
            options: dict(),
            topic: uri(),
            payload,
        },
        8 => Message::Published {
            request: s.a,
            publication: s.b,
        },
        9 => Message::Subscribe {
            request: s.a,
            options: dict(),
            topic: uri(),
        },
        10 => Message::Subscribed {
            request: s.a,
            subscription: s.b,
        },
        11 => Message::Unsubscribe {
            request: s.a,
            subscription: s.b,
        },
        12 => Message::Unsubscribed {
            request: s.a,
            details: None,
        },
        13 => Message::Unsubscribed {
            request: 0,
            details: Some(dict()),
        },
        14 => Message::Event {
            subscription: s.a,
            publication: s.b,
            details: dict(),
            payload,
        },
        15 => Message::Call {
            request: s.a,
            options: dict(),
            procedure: uri(),
            payload,
        },
        16 => Message::Cancel {
            request: s.a,
            options: dict(),
        },
        17 => Message::Result {
            request: s.a,
            details: dict(),
            payload,
        },
        18 => Message::Register {
            request: s.a,
            options: dict(),
            procedure: uri(),
        },
        19 => Message::Registered {
            request: s.a,
            registration: s.b,
        },
        20 => Message::Unregister {
            request: s.a,
            registration: s.b,
        },
        21 => Message::Unregistered {
            request: s.a,
            details: None,
        },
        22 => Message::Unregistered {
            request: 0,
            details: Some(dict()),
        },
        23 => Message::Invocation {
            request: s.a,
            registration: s.b,
            details: dict(),
            payload,
        },
        24 => Message::Interrupt {
            request: s.a,
            options: dict(),
        },
        25 => Message::Yield {
            request: s.a,
            options: dict(),
            payload,
        },
        _ => Message::EventReceived {
            publication: s.a,
            payload,
        },
    }
}

/// Splits off the payload so headers can be compared across serializers.
fn split(msg: &Message<'_>) -> (Message<'static>, Option<Payload<'static>>) {
    let payload = msg.payload();
    // Compare headers through a message whose payload is blanked out.
    let blank = Payload::empty(Serializer::Json);
    let blanked = match msg.clone() {
        Message::Abort {
            details, reason, ..
        } => Message::Abort {
            details,
            reason,
            payload: blank,
        },
        Message::Error {
            request_type,
            request,
            details,
            error,
            ..
        } => Message::Error {
            request_type,
            request,
            details,
            error,
            payload: blank,
        },
        Message::Publish {
            request,
            options,
            topic,
            ..
        } => Message::Publish {
            request,
            options,
            topic,
            payload: blank,
        },
        Message::Event {
            subscription,
            publication,
            details,
            ..
        } => Message::Event {
            subscription,
            publication,
            details,
            payload: blank,
        },
        Message::Call {
            request,
            options,
            procedure,
            ..
        } => Message::Call {
            request,
            options,
            procedure,
            payload: blank,
        },
        Message::Result {
            request, details, ..
        } => Message::Result {
            request,
            details,
            payload: blank,
        },
        Message::Invocation {
            request,
            registration,
            details,
            ..
        } => Message::Invocation {
            request,
            registration,
            details,
            payload: blank,
        },
        Message::Yield {
            request, options, ..
        } => Message::Yield {
            request,
            options,
            payload: blank,
        },
        Message::EventReceived { publication, .. } => Message::EventReceived {
            publication,
            payload: blank,
        },
        other => other,
    };
    (
        into_static(blanked),
        payload.map(|p| Payload {
            ser: p.ser,
            count: p.count,
            raw: leak(p.raw),
        }),
    )
}

fn leak(bytes: &[u8]) -> &'static [u8] {
    Box::leak(bytes.to_vec().into_boxed_slice())
}

fn into_static(msg: Message<'_>) -> Message<'static> {
    // Re-encode/decode from a leaked buffer: the simplest way to detach every Cow.
    let mut out = Vec::new();
    encode(&msg, Serializer::MsgPack, &mut out).unwrap();
    decode(Serializer::MsgPack, leak(&out)).unwrap()
}

#[derive(Debug, PartialEq)]
enum PayloadValues<'a> {
    Transparent(Value<'a>),
    Values(Vec<Value<'a>>, Option<Dict<'a>>),
}

fn payload_values<'a>(p: &Payload<'a>) -> PayloadValues<'a> {
    match transparent_payload(p).unwrap() {
        Some(v) => PayloadValues::Transparent(v),
        None => {
            let (args, kwargs) = decode_payload_values(p).unwrap();
            PayloadValues::Values(args, kwargs)
        }
    }
}

/// How a foreign CBOR encoder writes a value: `choices` picks, item by item, among the forms
/// RFC 8949 allows besides wampring's own (shortest heads, definite lengths, float64).
struct ForeignCbor<'c> {
    choices: &'c [u8],
    next: usize,
    out: Vec<u8>,
}

impl ForeignCbor<'_> {
    fn choice(&mut self) -> u8 {
        let c = self.choices[self.next % self.choices.len()];
        self.next += 1;
        c
    }

    /// A head in its shortest form or (by choice) a wider one.
    fn head(&mut self, major: u8, arg: u64) {
        let m = major << 5;
        let widest = self.choice() % 4 == 0;
        if arg < 24 && !widest {
            self.out.push(m | arg as u8);
        } else if arg <= 0xff && !widest {
            self.out.extend_from_slice(&[m | 24, arg as u8]);
        } else if arg <= 0xffff && !widest {
            self.out.push(m | 25);
            self.out.extend_from_slice(&(arg as u16).to_be_bytes());
        } else {
            self.out.push(m | 27);
            self.out.extend_from_slice(&arg.to_be_bytes());
        }
    }

    /// A string, whole or (by choice) in indefinite-length chunks split at char boundaries.
    fn string(&mut self, major: u8, bytes: &[u8], text: bool) {
        if self.choice() % 3 != 0 || bytes.is_empty() {
            self.head(major, bytes.len() as u64);
            self.out.extend_from_slice(bytes);
            return;
        }
        self.out.push((major << 5) | 31);
        let mut at = 0;
        while at < bytes.len() {
            let mut end = (at + 1 + usize::from(self.choice() % 5)).min(bytes.len());
            while text && end < bytes.len() && (bytes[end] & 0xc0) == 0x80 {
                end += 1;
            }
            self.head(major, (end - at) as u64);
            self.out.extend_from_slice(&bytes[at..end]);
            at = end;
        }
        self.out.push(0xff);
    }

    fn value(&mut self, v: &Value<'_>) {
        match v {
            Value::Null => {
                // null, or undefined (node-cbor's JavaScript undefined), which reads as null.
                let byte = if self.choice() % 2 == 0 { 0xf6 } else { 0xf7 };
                self.out.push(byte);
            }
            Value::Bool(b) => self.out.push(if *b { 0xf5 } else { 0xf4 }),
            Value::UInt(u) => self.head(0, *u),
            Value::Int(i) if *i >= 0 => self.head(0, *i as u64),
            Value::Int(i) => self.head(1, !*i as u64),
            Value::Float(f) => {
                let single = *f as f32;
                if f64::from(single) == *f && self.choice() % 2 == 0 {
                    self.out.push(0xfa);
                    self.out.extend_from_slice(&single.to_bits().to_be_bytes());
                } else if *f == 0.0 && f.is_sign_positive() {
                    self.out.extend_from_slice(&[0xf9, 0x00, 0x00]);
                } else {
                    self.out.push(0xfb);
                    self.out.extend_from_slice(&f.to_bits().to_be_bytes());
                }
            }
            Value::Str(s) => self.string(3, s.as_bytes(), true),
            Value::Bin(b) => self.string(2, b, false),
            Value::List(items) => {
                let indefinite = self.choice() % 2 == 0;
                if indefinite {
                    self.out.push(0x9f);
                } else {
                    self.head(4, items.len() as u64);
                }
                for item in items {
                    self.value(item);
                }
                if indefinite {
                    self.out.push(0xff);
                }
            }
            Value::Dict(dict) => {
                let indefinite = self.choice() % 2 == 0;
                if indefinite {
                    self.out.push(0xbf);
                } else {
                    self.head(5, dict.len() as u64);
                }
                for (key, value) in dict.iter() {
                    self.string(3, key.as_bytes(), true);
                    self.value(value);
                }
                if indefinite {
                    self.out.push(0xff);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn foreign_cbor_forms_read_and_transcode_as_the_same_values(
        args in vec(value(), 0..4),
        kwargs in vec((text(), value()), 0..4).prop_map(dict_from),
        choices in vec(any::<u8>(), 1..32),
    ) {
        let mut writer = ForeignCbor { choices: &choices, next: 0, out: Vec::new() };
        writer.value(&Value::List(args.clone()));
        writer.value(&Value::Dict(kwargs.clone()));
        let raw = writer.out;
        let foreign = Payload { ser: Serializer::Cbor, count: 2, raw: &raw };
        let (got_args, got_kwargs) = decode_payload_values(&foreign).unwrap();
        prop_assert_eq!(&got_args, &args);
        prop_assert_eq!(got_kwargs.as_ref(), Some(&kwargs));
        // In a message, to every serializer: the same values; back in CBOR: wampring's form.
        let msg = Message::Result { request: 1, details: Dict::new(), payload: foreign };
        let mut own = Vec::new();
        encode_value(&Value::List(args.clone()), Serializer::Cbor, &mut own).unwrap();
        encode_value(&Value::Dict(kwargs.clone()), Serializer::Cbor, &mut own).unwrap();
        for to in Serializer::ALL {
            let mut out = Vec::new();
            encode(&msg, to, &mut out).unwrap();
            let back = decode(to, &out).unwrap();
            let p = back.payload().unwrap();
            let (a, k) = decode_payload_values(p).unwrap();
            prop_assert_eq!(&a, &args);
            prop_assert_eq!(k.as_ref(), Some(&kwargs));
            if to == Serializer::Cbor {
                prop_assert_eq!(p.raw, &raw[..], "CBOR to CBOR is forwarded untouched");
            } else {
                let mut again = Vec::new();
                encode(&back, Serializer::Cbor, &mut again).unwrap();
                let again = decode(Serializer::Cbor, &again).unwrap();
                prop_assert_eq!(again.payload().unwrap().raw, &own[..]);
            }
        }
    }

    #[test]
    fn roundtrip_same_and_cross_serializer(s in spec()) {
        for from in Serializer::ALL {
            let owned = build_payload(&s.payload, from);
            let msg = build(&s, owned.as_payload());
            for to in Serializer::ALL {
                let mut out = Vec::new();
                encode(&msg, to, &mut out).unwrap();
                let back = decode(to, &out).unwrap_or_else(|e| panic!("{from}->{to}: {e}: {msg:?}"));
                if from == to {
                    prop_assert_eq!(&back, &msg);
                } else {
                    let (want_header, want_payload) = split(&msg);
                    let (got_header, got_payload) = split(&back);
                    prop_assert_eq!(got_header, want_header);
                    prop_assert_eq!(got_payload.map(|p| p.count), want_payload.map(|p| p.count));
                    if let (Some(got), Some(want)) = (got_payload, want_payload) {
                        prop_assert_eq!(payload_values(&got), payload_values(&want));
                    }
                    // And back again: transcoding twice is the identity on the bytes.
                    let mut again = Vec::new();
                    encode(&back, from, &mut again).unwrap();
                    let mut first = Vec::new();
                    encode(&msg, from, &mut first).unwrap();
                    prop_assert_eq!(again, first);
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        for ser in Serializer::ALL {
            if let Ok(msg) = decode(ser, &bytes) {
                for to in Serializer::ALL {
                    let _ = encode(&msg, to, &mut Vec::new());
                }
            }
        }
    }

    #[test]
    fn mutated_messages_never_panic(
        s in spec(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
    ) {
        for ser in Serializer::ALL {
            let owned = build_payload(&s.payload, ser);
            let msg = build(&s, owned.as_payload());
            let mut bytes = Vec::new();
            encode(&msg, ser, &mut bytes).unwrap();
            for (index, byte, op) in &edits {
                if bytes.is_empty() {
                    break;
                }
                let at = index.index(bytes.len());
                match op {
                    0 => bytes[at] = *byte,
                    1 => bytes.insert(at, *byte),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            if let Ok(msg) = decode(ser, &bytes) {
                for to in Serializer::ALL {
                    let _ = encode(&msg, to, &mut Vec::new());
                    if let Some(p) = msg.payload() {
                        let _ = transparent_payload(p);
                        let _ = decode_payload_values(p);
                    }
                }
            }
        }
    }
}

#[test]
fn hot_path_shape_matches_the_digest_example() {
    // [48, 7, {}, "com.a.add2", [23, 7]] -> [68, 5, 991, {}, [23, 7]]
    let call = br#"[48, 7, {}, "com.a.add2", [23, 7]]"#;
    let Message::Call { payload, .. } = decode(Serializer::Json, call).unwrap() else {
        panic!()
    };
    let invocation = Message::Invocation {
        request: 5,
        registration: 991,
        details: Dict::new(),
        payload,
    };
    let mut out = Vec::new();
    encode(&invocation, Serializer::Json, &mut out).unwrap();
    assert_eq!(out, br#"[68,5,991,{},[23, 7]]"#);
}
