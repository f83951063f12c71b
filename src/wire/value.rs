//! Decoded WAMP values for the parts of a message the router reads: Options, Details, HELLO
//! roles, meta-API arguments. Payloads are never turned into `Value`s on the routing path.
//!
//! Strings borrow from the frame where the source allows it. JSON strings that start with NUL
//! are binary (`"\u0000"+base64`, digest §7) and decode to [`Value::Bin`].

use std::borrow::Cow;

/// One decoded value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// JSON `null`, MessagePack `nil` (and the ext-typed "undefined" wampy.js sends).
    Null,
    Bool(bool),
    /// Negative integers.
    Int(i64),
    /// Non-negative integers.
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Bin(Cow<'a, [u8]>),
    List(Vec<Value<'a>>),
    Dict(Dict<'a>),
}

impl<'a> Value<'a> {
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Non-negative integer (never a bool, never a float).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::UInt(u) => Some(*u),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Detaches the value from the frame it borrows from.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Int(i) => Value::Int(i),
            Value::UInt(u) => Value::UInt(u),
            Value::Float(f) => Value::Float(f),
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Bin(b) => Value::Bin(Cow::Owned(b.into_owned())),
            Value::List(l) => Value::List(l.into_iter().map(Value::into_owned).collect()),
            Value::Dict(d) => Value::Dict(d.into_owned()),
        }
    }
}

impl From<bool> for Value<'_> {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<u64> for Value<'_> {
    fn from(u: u64) -> Self {
        Value::UInt(u)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Str(Cow::Borrowed(s))
    }
}

impl From<String> for Value<'_> {
    fn from(s: String) -> Self {
        Value::Str(Cow::Owned(s))
    }
}

impl<'a> From<Dict<'a>> for Value<'a> {
    fn from(d: Dict<'a>) -> Self {
        Value::Dict(d)
    }
}

/// A WAMP dict (string keys, insertion order kept). Options/Details are almost always empty or
/// tiny, so a vector beats a hash map and an empty one costs no allocation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dict<'a> {
    entries: Vec<(Cow<'a, str>, Value<'a>)>,
}

impl<'a> Dict<'a> {
    pub const fn new() -> Self {
        Dict {
            entries: Vec::new(),
        }
    }

    pub fn with_capacity(n: usize) -> Self {
        Dict {
            entries: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends an entry, replacing an existing one with the same key.
    pub fn insert(&mut self, key: impl Into<Cow<'a, str>>, value: impl Into<Value<'a>>) {
        let key = key.into();
        let value = value.into();
        if let Some(slot) = self.entries.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.entries.push((key, value));
        }
    }

    /// Appends without the duplicate check (decoders use it after checking themselves).
    pub fn push_unchecked(&mut self, key: Cow<'a, str>, value: Value<'a>) {
        self.entries.push((key, value));
    }

    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The value under `key` when it is a bool; `None` when absent or null.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn get_dict(&self, key: &str) -> Option<&Dict<'a>> {
        self.get(key).and_then(Value::as_dict)
    }

    /// Entries in this dict and every dict or list nested in it, counted until `limit` is
    /// passed (so a huge header costs no more than `limit` steps to judge).
    pub fn entries_deep(&self, limit: usize) -> usize {
        fn value(v: &Value<'_>, count: &mut usize, limit: usize) {
            match v {
                Value::Dict(d) => dict(d, count, limit),
                Value::List(items) => {
                    for item in items {
                        if *count > limit {
                            return;
                        }
                        *count += 1;
                        value(item, count, limit);
                    }
                }
                _ => {}
            }
        }
        fn dict(d: &Dict<'_>, count: &mut usize, limit: usize) {
            for (_, v) in d.iter() {
                if *count > limit {
                    return;
                }
                *count += 1;
                value(v, count, limit);
            }
        }
        let mut count = 0;
        dict(self, &mut count, limit);
        count
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value<'a>)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn into_owned(self) -> Dict<'static> {
        Dict {
            entries: self
                .entries
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                .collect(),
        }
    }
}
