//! Golden tests for the wire codec against the WAMP spec test vectors
//! (`../shared/wamp-testvectors/singlemessage/**.json`): every JSON and MessagePack sample
//! decodes to its `expected_attributes`, survives re-encoding in both serializers, and every
//! `wmsg` sample decodes or fails as the vector says.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value as Json};
use wampring::wire::{
    decode, decode_payload_values, encode, transparent_payload, Dict, Message, Serializer, Value,
};

fn vectors_dir() -> PathBuf {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/wamp-testvectors/singlemessage");
    assert!(
        dir.is_dir(),
        "test vectors not found at {} (the shared/ directory must sit beside the crate)",
        dir.display()
    );
    dir
}

fn vector_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read vectors dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            vector_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    files.sort();
}

/// A wire value as serde_json sees it (binaries as a hex string, which never occurs in the
/// vectors' expectations except through `payload`).
fn to_json(v: &Value<'_>) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::UInt(u) => json!(u),
        Value::Float(f) => json!(f),
        Value::Str(s) => json!(s),
        Value::Bin(b) => json!(format!("bin:{}", hex::encode(b))),
        Value::List(l) => Json::Array(l.iter().map(to_json).collect()),
        Value::Dict(d) => dict_to_json(d),
    }
}

fn dict_to_json(d: &Dict<'_>) -> Json {
    Json::Object(d.iter().map(|(k, v)| (k.to_owned(), to_json(v))).collect())
}

/// serde_json -> wire value (for encoding `wmsg` samples as MessagePack).
fn from_json(v: &Json) -> Value<'static> {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::UInt(u),
            (None, Some(i)) => Value::Int(i),
            _ => Value::Float(n.as_f64().unwrap()),
        },
        Json::String(s) => Value::Str(s.clone().into()),
        Json::Array(l) => Value::List(l.iter().map(from_json).collect()),
        Json::Object(o) => {
            let mut d = Dict::new();
            for (k, v) in o {
                d.insert(k.clone(), from_json(v));
            }
            Value::Dict(d)
        }
    }
}

/// The message's attributes under the names the vectors use (with their aliases).
fn attributes(msg: &Message<'_>) -> Map<String, Json> {
    let mut a = Map::new();
    a.insert("message_type".into(), json!(msg.code()));
    let mut put = |k: &str, v: Json| {
        a.insert(k.to_owned(), v);
    };
    let mut payload = None;
    match msg {
        Message::Hello { realm, details } => {
            put("realm", json!(realm));
            put("details", dict_to_json(details));
            if let Some(roles) = details.get("roles") {
                put("roles", to_json(roles));
            }
        }
        Message::Welcome { session, details } => {
            put("session_id", json!(session));
            put("details", dict_to_json(details));
            if let Some(roles) = details.get("roles") {
                put("roles", to_json(roles));
            }
        }
        Message::Abort {
            details,
            reason,
            payload: p,
        } => {
            put("details", dict_to_json(details));
            put("reason", json!(reason));
            payload = Some(*p);
        }
        Message::Challenge { method, extra } => {
            put("method", json!(method));
            put("extra", dict_to_json(extra));
        }
        Message::Authenticate { signature, extra } => {
            put("signature", json!(signature));
            put("extra", dict_to_json(extra));
        }
        Message::Goodbye { details, reason } => {
            put("details", dict_to_json(details));
            put("reason", json!(reason));
        }
        Message::Error {
            request_type,
            request,
            details,
            error,
            payload: p,
        } => {
            put("request_type", json!(request_type));
            put("request_id", json!(request));
            put("details", dict_to_json(details));
            put("error", json!(error));
            payload = Some(*p);
        }
        Message::Publish {
            request,
            options,
            topic,
            payload: p,
        } => {
            put("request_id", json!(request));
            put("options", dict_to_json(options));
            put("topic", json!(topic));
            payload = Some(*p);
        }
        Message::Published {
            request,
            publication,
        } => {
            put("request_id", json!(request));
            put("publication_id", json!(publication));
        }
        Message::Subscribe {
            request,
            options,
            topic,
        } => {
            put("request_id", json!(request));
            put("options", dict_to_json(options));
            put("topic", json!(topic));
        }
        Message::Subscribed {
            request,
            subscription,
        }
        | Message::Unsubscribe {
            request,
            subscription,
        } => {
            put("request_id", json!(request));
            put("subscription_id", json!(subscription));
        }
        Message::Unsubscribed { request, details } | Message::Unregistered { request, details } => {
            put("request_id", json!(request));
            if let Some(details) = details {
                put("details", dict_to_json(details));
            }
        }
        Message::Event {
            subscription,
            publication,
            details,
            payload: p,
        } => {
            put("subscription", json!(subscription));
            put("subscription_id", json!(subscription));
            put("publication", json!(publication));
            put("publication_id", json!(publication));
            put("details", dict_to_json(details));
            payload = Some(*p);
        }
        Message::Call {
            request,
            options,
            procedure,
            payload: p,
        } => {
            put("request_id", json!(request));
            put("options", dict_to_json(options));
            put("procedure", json!(procedure));
            payload = Some(*p);
        }
        Message::Cancel { request, options } | Message::Interrupt { request, options } => {
            put("request_id", json!(request));
            put("options", dict_to_json(options));
        }
        Message::Result {
            request,
            details,
            payload: p,
        } => {
            put("request_id", json!(request));
            put("details", dict_to_json(details));
            payload = Some(*p);
        }
        Message::Register {
            request,
            options,
            procedure,
        } => {
            put("request_id", json!(request));
            put("options", dict_to_json(options));
            put("procedure", json!(procedure));
        }
        Message::Registered {
            request,
            registration,
        }
        | Message::Unregister {
            request,
            registration,
        } => {
            put("request_id", json!(request));
            put("registration_id", json!(registration));
        }
        Message::Invocation {
            request,
            registration,
            details,
            payload: p,
        } => {
            put("request_id", json!(request));
            put("registration_id", json!(registration));
            put("details", dict_to_json(details));
            payload = Some(*p);
        }
        Message::Yield {
            request,
            options,
            payload: p,
        } => {
            put("request_id", json!(request));
            put("options", dict_to_json(options));
            payload = Some(*p);
        }
        Message::EventReceived {
            publication,
            payload: p,
        } => {
            put("publication_id", json!(publication));
            payload = Some(*p);
        }
    }
    let (args, kwargs, transparent) = match payload {
        None => (Json::Null, Json::Null, Json::Null),
        Some(p) => match transparent_payload(&p).expect("transparent payload decodes") {
            Some(Value::Bin(bytes)) => (Json::Null, Json::Null, json!(hex::encode(bytes))),
            Some(Value::Str(text)) => (Json::Null, Json::Null, json!(hex::encode(text.as_bytes()))),
            Some(other) => panic!("unexpected transparent payload {other:?}"),
            None => {
                let (args, kwargs) = decode_payload_values(&p).expect("payload decodes");
                let args = if p.count == 0 {
                    Json::Null
                } else {
                    Json::Array(args.iter().map(to_json).collect())
                };
                (
                    args,
                    kwargs.as_ref().map_or(Json::Null, dict_to_json),
                    Json::Null,
                )
            }
        },
    };
    put("args", args);
    put("kwargs", kwargs);
    put("payload", transparent);
    a
}

fn check_expected(context: &str, msg: &Message<'_>, expected: &Map<String, Json>) {
    let actual = attributes(msg);
    for (key, want) in expected {
        let got = actual
            .get(key)
            .unwrap_or_else(|| panic!("{context}: no attribute {key:?} on {msg:?}"));
        assert_eq!(got, want, "{context}: attribute {key:?}");
    }
}

/// Re-encodes `msg` in every serializer (and back through the other one) and checks the
/// decoded attributes stay the same.
fn check_roundtrips(context: &str, msg: &Message<'_>) {
    let original = attributes(msg);
    for first in Serializer::ALL {
        let mut once = Vec::new();
        encode(msg, first, &mut once).unwrap_or_else(|e| panic!("{context}: encode {first}: {e}"));
        let decoded = decode(first, &once)
            .unwrap_or_else(|e| panic!("{context}: decode {first} of own output: {e}"));
        assert_eq!(attributes(&decoded), original, "{context}: via {first}");
        for second in Serializer::ALL {
            let mut twice = Vec::new();
            encode(&decoded, second, &mut twice)
                .unwrap_or_else(|e| panic!("{context}: {first}->{second}: {e}"));
            let again = decode(second, &twice)
                .unwrap_or_else(|e| panic!("{context}: {first}->{second}: {e}"));
            assert_eq!(
                attributes(&again),
                original,
                "{context}: via {first} then {second}"
            );
            if first == second {
                assert_eq!(twice, once, "{context}: re-encoding in {first} is stable");
            }
        }
    }
}

#[test]
fn spec_test_vectors() {
    let mut files = Vec::new();
    vector_files(&vectors_dir(), &mut files);
    assert!(
        files.len() >= 20,
        "expected the singlemessage vector files, found {}",
        files.len()
    );

    let (mut decoded_variants, mut wmsg_ok, mut wmsg_errors) = (0, 0, 0);
    let mut cbor_variants = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read vector");
        let vector: Json = serde_json::from_str(&text).expect("vector is JSON");
        let name = file.file_name().unwrap().to_string_lossy();
        for (index, sample) in vector["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .enumerate()
        {
            let context = format!("{name} sample {index} ({})", sample["description"]);

            if let Some(wmsg) = sample.get("wmsg") {
                let text = serde_json::to_string(wmsg).unwrap();
                let result = decode(Serializer::Json, text.as_bytes());
                match sample.get("expected_error") {
                    Some(expected) => {
                        let needle = expected["contains"].as_str().expect("contains");
                        let err = result.expect_err(&format!("{context}: {text} must fail"));
                        assert!(
                            err.message.contains(needle),
                            "{context}: error {:?} lacks {needle:?}",
                            err.message
                        );
                        wmsg_errors += 1;
                    }
                    None => {
                        let msg =
                            result.unwrap_or_else(|e| panic!("{context}: {text} must decode: {e}"));
                        check_roundtrips(&context, &msg);
                        wmsg_ok += 1;
                    }
                }
                // The same message as MessagePack and as CBOR must meet the same fate.
                for binary in [Serializer::MsgPack, Serializer::Cbor] {
                    let mut packed = Vec::new();
                    wampring::wire::encode_value(&from_json(wmsg), binary, &mut packed).unwrap();
                    let result = decode(binary, &packed);
                    assert_eq!(
                        result.is_err(),
                        sample.get("expected_error").is_some(),
                        "{context}: {binary} {result:?}"
                    );
                }
                continue;
            }

            let expected = sample["expected_attributes"]
                .as_object()
                .expect("expected_attributes");
            let serializers = &sample["serializers"];
            for variant in serializers["json"].as_array().into_iter().flatten() {
                let bytes = variant["bytes"].as_str().expect("json bytes");
                let msg = decode(Serializer::Json, bytes.as_bytes())
                    .unwrap_or_else(|e| panic!("{context}: JSON {bytes}: {e}"));
                check_expected(&format!("{context} JSON"), &msg, expected);
                check_roundtrips(&format!("{context} JSON"), &msg);
                decoded_variants += 1;
            }
            for variant in serializers["msgpack"].as_array().into_iter().flatten() {
                let bytes =
                    hex::decode(variant["bytes_hex"].as_str().expect("bytes_hex")).expect("hex");
                let msg = decode(Serializer::MsgPack, &bytes)
                    .unwrap_or_else(|e| panic!("{context}: msgpack {}: {e}", hex::encode(&bytes)));
                check_expected(&format!("{context} msgpack"), &msg, expected);
                check_roundtrips(&format!("{context} msgpack"), &msg);
                decoded_variants += 1;
            }
            for variant in serializers["cbor"].as_array().into_iter().flatten() {
                let bytes =
                    hex::decode(variant["bytes_hex"].as_str().expect("bytes_hex")).expect("hex");
                let msg = decode(Serializer::Cbor, &bytes)
                    .unwrap_or_else(|e| panic!("{context}: cbor {}: {e}", hex::encode(&bytes)));
                check_expected(&format!("{context} cbor"), &msg, expected);
                check_roundtrips(&format!("{context} cbor"), &msg);
                // The vectors are what Autobahn writes (shortest heads): so does wampring.
                let mut again = Vec::new();
                encode(&msg, Serializer::Cbor, &mut again).unwrap();
                assert_eq!(
                    hex::encode(&again),
                    hex::encode(&bytes),
                    "{context}: cbor re-encoded differs from the vector"
                );
                decoded_variants += 1;
                cbor_variants += 1;
            }
        }
    }
    println!(
        "decoded variants: {decoded_variants} ({cbor_variants} CBOR), wmsg ok: {wmsg_ok}, wmsg errors: {wmsg_errors}"
    );
    assert!(
        cbor_variants >= 30,
        "only {cbor_variants} CBOR variants checked"
    );
    // Floors so that a path or parsing mistake cannot make this test vacuous.
    assert!(
        decoded_variants >= 80,
        "only {decoded_variants} serialized variants checked"
    );
    assert!(wmsg_ok >= 35, "only {wmsg_ok} valid wmsg samples checked");
    assert!(
        wmsg_errors >= 25,
        "only {wmsg_errors} invalid wmsg samples checked"
    );
}
