//! The spec-known Options/Details keys of each message type and the type each must have,
//! checked once at decode time so the router can read them without re-checking (a wrong type
//! is a protocol violation, e.g. `PUBLISH.Options.acknowledge` given as `1`).
//!
//! One table per message type, in one place. Unknown keys are kept and ignored. Keys starting
//! with `ppt_` (payload pass-through, digest §9.4) must be strings wherever they appear.

use super::message::code::*;
use super::value::{Dict, Value};
use super::{is_valid_id, MAX_ID};

/// The type a known key must have.
#[derive(Copy, Clone, Debug)]
pub enum Rule {
    Bool,
    /// An id in [1, 2^53].
    Id,
    /// A non-negative integer.
    UInt,
    Str,
    Dict,
    /// A list of ids.
    IdList,
    /// A list of strings.
    StrList,
    /// A list of dicts (`forward_for`).
    DictList,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A payload encryption algorithm: one of [`ENC_ALGOS`] or a custom `x_...` name.
    EncAlgo,
}

/// Payload encryption / pass-through algorithms the spec and Autobahn name.
pub const ENC_ALGOS: &[&str] = &["cryptobox", "mqtt", "xsalsa20poly1305", "aes256gcm"];

pub const MATCH_POLICIES: &[&str] = &["exact", "prefix", "wildcard"];
/// The REGISTER.Options.invoke values (validated by the router, see `REGISTER_OPTIONS`).
pub const INVOKE_POLICIES: &[&str] = &["single", "roundrobin", "random", "first", "last"];
pub const CANCEL_MODES: &[&str] = &["skip", "kill", "killnowait"];

pub type Table = &'static [(&'static str, Rule)];

/// Encrypted/pass-through payload keys shared by every payload-carrying message.
const PAYLOAD_KEYS: Table = &[
    ("enc_algo", Rule::EncAlgo),
    ("enc_serializer", Rule::Str),
    ("enc_key", Rule::Str),
    ("forward_for", Rule::DictList),
    ("transaction_hash", Rule::Str),
];

const HELLO_DETAILS: Table = &[
    ("roles", Rule::Dict),
    ("agent", Rule::Str),
    ("authmethods", Rule::StrList),
    ("authid", Rule::Str),
    ("authrole", Rule::Str),
    ("authextra", Rule::Dict),
];

const WELCOME_DETAILS: Table = &[
    ("roles", Rule::Dict),
    ("agent", Rule::Str),
    ("authid", Rule::Str),
    ("authrole", Rule::Str),
    ("authmethod", Rule::Str),
    ("authprovider", Rule::Str),
    ("authextra", Rule::Dict),
    ("realm", Rule::Str),
];

const CLOSE_DETAILS: Table = &[("message", Rule::Str)];

const PUBLISH_OPTIONS: Table = &[
    ("acknowledge", Rule::Bool),
    ("exclude_me", Rule::Bool),
    ("retain", Rule::Bool),
    ("disclose_me", Rule::Bool),
    ("x_acknowledged_delivery", Rule::Bool),
    ("exclude", Rule::IdList),
    ("eligible", Rule::IdList),
    ("exclude_authid", Rule::StrList),
    ("exclude_authrole", Rule::StrList),
    ("eligible_authid", Rule::StrList),
    ("eligible_authrole", Rule::StrList),
];

const SUBSCRIBE_OPTIONS: Table = &[
    ("match", Rule::OneOf(MATCH_POLICIES)),
    ("get_retained", Rule::Bool),
    ("forward_for", Rule::DictList),
];

const EVENT_DETAILS: Table = &[
    ("publisher", Rule::Id),
    ("publisher_authid", Rule::Str),
    ("publisher_authrole", Rule::Str),
    ("topic", Rule::Str),
    ("retained", Rule::Bool),
    ("x_acknowledged_delivery", Rule::Bool),
];

const CALL_OPTIONS: Table = &[
    ("receive_progress", Rule::Bool),
    ("progress", Rule::Bool),
    ("disclose_me", Rule::Bool),
    ("timeout", Rule::UInt),
];

const CANCEL_OPTIONS: Table = &[
    ("mode", Rule::OneOf(CANCEL_MODES)),
    ("forward_for", Rule::DictList),
];

const INTERRUPT_OPTIONS: Table = &[
    ("mode", Rule::OneOf(CANCEL_MODES)),
    ("reason", Rule::Str),
    ("forward_for", Rule::DictList),
];

const RESULT_DETAILS: Table = &[("progress", Rule::Bool)];

const REGISTER_OPTIONS: Table = &[
    ("match", Rule::OneOf(MATCH_POLICIES)),
    // `invoke` is checked by the router: an unknown policy (or a non-string) is answered with
    // ERROR wamp.error.invalid_argument, not a protocol violation (router/mod.rs "Choices").
    ("disclose_caller", Rule::Bool),
    ("forward_timeout", Rule::Bool),
    ("force_reregister", Rule::Bool),
    ("concurrency", Rule::UInt),
    ("forward_for", Rule::DictList),
];

const REVOCATION_DETAILS_SUBSCRIPTION: Table = &[("subscription", Rule::Id), ("reason", Rule::Str)];
const REVOCATION_DETAILS_REGISTRATION: Table = &[("registration", Rule::Id), ("reason", Rule::Str)];

const INVOCATION_DETAILS: Table = &[
    ("receive_progress", Rule::Bool),
    ("progress", Rule::Bool),
    ("caller", Rule::Id),
    ("caller_authid", Rule::Str),
    ("caller_authrole", Rule::Str),
    ("procedure", Rule::Str),
    ("timeout", Rule::UInt),
    ("trustlevel", Rule::UInt),
];

const YIELD_OPTIONS: Table = &[("progress", Rule::Bool)];

/// The known keys of the dict of message type `code` (each message has at most one dict the
/// spec gives keys to: its Options or Details): the type's own keys, then, for
/// payload-carrying types, `PAYLOAD_KEYS`.
pub fn tables(code: u64) -> &'static [Table] {
    match code {
        HELLO => &[HELLO_DETAILS],
        WELCOME => &[WELCOME_DETAILS],
        ABORT | GOODBYE => &[CLOSE_DETAILS],
        ERROR => &[PAYLOAD_KEYS],
        PUBLISH => &[PUBLISH_OPTIONS, PAYLOAD_KEYS],
        SUBSCRIBE => &[SUBSCRIBE_OPTIONS],
        UNSUBSCRIBED => &[REVOCATION_DETAILS_SUBSCRIPTION],
        EVENT => &[EVENT_DETAILS, PAYLOAD_KEYS],
        CALL => &[CALL_OPTIONS, PAYLOAD_KEYS],
        CANCEL => &[CANCEL_OPTIONS],
        RESULT => &[RESULT_DETAILS, PAYLOAD_KEYS],
        REGISTER => &[REGISTER_OPTIONS],
        UNREGISTERED => &[REVOCATION_DETAILS_REGISTRATION],
        INVOCATION => &[INVOCATION_DETAILS, PAYLOAD_KEYS],
        INTERRUPT => &[INTERRUPT_OPTIONS],
        YIELD => &[YIELD_OPTIONS, PAYLOAD_KEYS],
        _ => &[],
    }
}

/// The rule for `key` in a dict of message type `code`, if the spec knows the key.
pub fn rule(code: u64, key: &str) -> Option<Rule> {
    let known = tables(code)
        .iter()
        .flat_map(|t| t.iter())
        .find(|(known, _)| *known == key);
    match known {
        Some((_, rule)) => Some(*rule),
        None if key.starts_with("ppt_") => Some(Rule::Str),
        None => None,
    }
}

/// Checks the known keys of `dict` (the `field` — "Options", "Details", "Extra" — of a message
/// named `message`). Returns the reason for the first violation, naming the key.
pub fn check(code: u64, message: &str, field: &str, dict: &Dict<'_>) -> Result<(), String> {
    if dict.is_empty() {
        return Ok(());
    }
    for (key, value) in dict.iter() {
        let Some(rule) = rule(code, key) else {
            continue;
        };
        if let Err(expected) = check_value(rule, value) {
            return Err(format!("{message}.{field}.{key} must be {expected}"));
        }
    }
    Ok(())
}

fn check_value(rule: Rule, value: &Value<'_>) -> Result<(), String> {
    let ok = match rule {
        Rule::Bool => matches!(value, Value::Bool(_)),
        Rule::Id => matches!(value, Value::UInt(id) if is_valid_id(*id)),
        Rule::UInt => matches!(value, Value::UInt(_)),
        Rule::Str => matches!(value, Value::Str(_)),
        Rule::Dict => matches!(value, Value::Dict(_)),
        Rule::IdList => value.as_list().is_some_and(|l| {
            l.iter()
                .all(|v| matches!(v, Value::UInt(id) if is_valid_id(*id)))
        }),
        Rule::StrList => value
            .as_list()
            .is_some_and(|l| l.iter().all(|v| matches!(v, Value::Str(_)))),
        Rule::DictList => value
            .as_list()
            .is_some_and(|l| l.iter().all(|v| matches!(v, Value::Dict(_)))),
        Rule::OneOf(choices) => value.as_str().is_some_and(|s| choices.contains(&s)),
        Rule::EncAlgo => value
            .as_str()
            .is_some_and(|s| ENC_ALGOS.contains(&s) || s.starts_with("x_")),
    };
    if ok {
        return Ok(());
    }
    Err(match rule {
        Rule::Bool => "a bool".to_owned(),
        Rule::Id => format!("an id in [1, {MAX_ID}]"),
        Rule::UInt => "a non-negative integer".to_owned(),
        Rule::Str => "a string".to_owned(),
        Rule::Dict => "a dict".to_owned(),
        Rule::IdList => "a list of ids".to_owned(),
        Rule::StrList => "a list of strings".to_owned(),
        Rule::DictList => "a list of dicts".to_owned(),
        Rule::OneOf(choices) => format!("one of {}", choices.join(", ")),
        Rule::EncAlgo => format!("one of {} or a custom x_... name", ENC_ALGOS.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(entries: Vec<(&'static str, Value<'static>)>) -> Dict<'static> {
        let mut d = Dict::new();
        for (k, v) in entries {
            d.insert(k, v);
        }
        d
    }

    #[test]
    fn bool_is_not_int_and_int_is_not_bool() {
        let bad = dict(vec![("acknowledge", Value::UInt(1))]);
        let err = check(PUBLISH, "PUBLISH", "Options", &bad).unwrap_err();
        assert_eq!(err, "PUBLISH.Options.acknowledge must be a bool");
        let bad = dict(vec![("timeout", Value::Bool(true))]);
        assert!(check(CALL, "CALL", "Options", &bad).is_err());
        let good = dict(vec![
            ("timeout", Value::UInt(0)),
            ("receive_progress", Value::Bool(false)),
        ]);
        assert!(check(CALL, "CALL", "Options", &good).is_ok());
    }

    #[test]
    fn lists_check_their_items() {
        let bad = dict(vec![(
            "exclude",
            Value::List(vec![Value::UInt(1), Value::UInt(0)]),
        )]);
        assert!(check(PUBLISH, "PUBLISH", "Options", &bad).is_err());
        let bad = dict(vec![(
            "eligible_authrole",
            Value::List(vec![Value::UInt(1)]),
        )]);
        assert!(check(PUBLISH, "PUBLISH", "Options", &bad)
            .unwrap_err()
            .contains("eligible_authrole"));
    }

    #[test]
    fn enums_and_ppt() {
        let ok = dict(vec![("mode", "killnowait".into())]);
        assert!(check(CANCEL, "CANCEL", "Options", &ok).is_ok());
        let bad = dict(vec![("mode", "kill_now".into())]);
        assert!(check(INTERRUPT, "INTERRUPT", "Options", &bad).is_err());
        let bad = dict(vec![("ppt_scheme", Value::UInt(1))]);
        assert!(check(CALL, "CALL", "Options", &bad)
            .unwrap_err()
            .contains("ppt_scheme"));
        let ok = dict(vec![
            ("enc_algo", "x_mine".into()),
            ("unknown_key", Value::UInt(3)),
        ]);
        assert!(check(EVENT, "EVENT", "Details", &ok).is_ok());
    }
}
