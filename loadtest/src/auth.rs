//! WAMP authentication as the generator's sessions perform it (digest §11): the credentials a
//! run was given ([`ClientAuth`], built from the `--authmethod` flags), what HELLO says about
//! them, the AUTHENTICATE answer to a CHALLENGE for ticket, WAMP-CRA (plain and salted),
//! Cryptosign and WAMP-SCRAM, and the check of the router's SCRAM signature in WELCOME. The
//! cryptography itself is `wampring::credentials`; this module only decides what goes into it.
//!
//! Key derivations (salted WAMP-CRA's PBKDF2, SCRAM's argon2id or PBKDF2) cost milliseconds to
//! seconds, and a router gives every session of one principal the same salt and parameters, so
//! each derived key is computed once per run and shared by all sessions and threads: `connect`
//! then measures the router's handshakes, not the generator's key stretching.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;
use wampring::credentials::{self, cryptosign, scram, wampcra};
use wampring::wire::{Dict, Value};

use crate::cli::{AuthArgs, AuthMethodArg};

/// The authentication method a run uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Anonymous,
    Ticket,
    WampCra,
    Cryptosign,
    Scram,
}

impl Method {
    /// The name offered in `HELLO.Details.authmethods`.
    pub fn hello_name(self) -> &'static str {
        match self {
            Method::Anonymous => "anonymous",
            Method::Ticket => "ticket",
            Method::WampCra => "wampcra",
            Method::Cryptosign => "cryptosign",
            Method::Scram => "wamp-scram",
        }
    }

    /// The flag value, also the name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Method::Scram => "scram",
            other => other.hello_name(),
        }
    }

    /// Whether a CHALLENGE for `method` is one this method answers (besides the name HELLO
    /// offered). SCRAM goes by two names: the spec's `wamp-scram` and Autobahn's and
    /// Crossbar.io's `scram`.
    fn answers(self, method: &str) -> bool {
        method == self.hello_name() || (self == Method::Scram && method == "scram")
    }
}

impl From<AuthMethodArg> for Method {
    fn from(arg: AuthMethodArg) -> Method {
        match arg {
            AuthMethodArg::Anonymous => Method::Anonymous,
            AuthMethodArg::Ticket => Method::Ticket,
            AuthMethodArg::Wampcra => Method::WampCra,
            AuthMethodArg::Cryptosign => Method::Cryptosign,
            AuthMethodArg::Scram => Method::Scram,
        }
    }
}

/// Parameters a derived key depends on besides the secret (fixed for a run).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Derivation {
    WampCra {
        salt: String,
        iterations: u32,
        keylen: u32,
    },
    Scram {
        salt: String,
        kdf: scram::Kdf,
    },
}

/// Distinct derivations kept per run. A router gives one principal one salt; a bound keeps a
/// router that salts every challenge differently from growing the cache without end (each
/// session then pays its own derivation, which the numbers will show).
const MAX_CACHED_KEYS: usize = 16;

/// Bounds on the cost a CHALLENGE may ask for, so a misconfigured or hostile router cannot
/// stall a thread for hours or exhaust memory. Far above what Crossbar.io and Autobahn use
/// (PBKDF2 1000 iterations; argon2id 4096 passes over 512 KiB).
const MAX_PBKDF2_ITERATIONS: u64 = 10_000_000;
const MAX_KEYLEN: u64 = 1024;
const MAX_ARGON2_ITERATIONS: u64 = 100_000;
const MAX_ARGON2_MEMORY_KIB: u64 = 1 << 20;

/// The credentials of a run, shared by all its sessions.
pub struct ClientAuth {
    pub method: Method,
    /// The name offered in HELLO: the method's own, or `--hello-authmethod`.
    pub hello_name: String,
    pub authid: Option<String>,
    pub authrole: Option<String>,
    /// Ticket, WAMP-CRA secret or SCRAM password.
    secret: Option<String>,
    /// Cryptosign: the private key and its public half in hex (sent in HELLO).
    key: Option<(SigningKey, String)>,
    derived: Mutex<Vec<(Derivation, Arc<[u8]>)>>,
}

impl fmt::Debug for ClientAuth {
    // Never the secret or the key: `Run` is Debug and may end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("method", &self.method)
            .field("hello_name", &self.hello_name)
            .field("authid", &self.authid)
            .field("authrole", &self.authrole)
            .field("public_key", &self.key.as_ref().map(|(_, public)| public))
            .finish_non_exhaustive()
    }
}

/// The first line of a secret file, without its line end.
fn first_line(path: &Path, flag: &str) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(format!(
            "{flag} {}: the first line is empty",
            path.display()
        ));
    }
    Ok(line.to_string())
}

impl ClientAuth {
    /// The credentials the flags describe (`None`: no `--authmethod`, nothing sent). Reads the
    /// secret and key files; the combinations were checked by `cli::validate`.
    pub fn from_args(args: &AuthArgs) -> Result<Option<ClientAuth>, String> {
        let Some(method) = args.authmethod else {
            return Ok(None);
        };
        let secret = match (&args.secret, &args.secret_file) {
            (Some(text), _) => Some(text.clone()),
            (None, Some(path)) => Some(first_line(path, "--secret-file")?),
            (None, None) => None,
        };
        let key_text = match (&args.private_key, &args.private_key_file) {
            (Some(text), _) => Some(text.clone()),
            (None, Some(path)) => Some(first_line(path, "--private-key-file")?),
            (None, None) => None,
        };
        let key = match key_text {
            Some(text) => {
                let key = cryptosign::parse_private_key(&text)
                    .map_err(|e| format!("the Cryptosign private key: {e}"))?;
                let public = cryptosign::public_key_of(&key);
                Some((key, public))
            }
            None => None,
        };
        let mut auth = ClientAuth::new(
            method.into(),
            args.authid.clone(),
            args.authrole.clone(),
            secret,
            key,
        );
        if let Some(name) = &args.hello_authmethod {
            auth.hello_name = name.clone();
        }
        auth.check()?;
        Ok(Some(auth))
    }

    fn new(
        method: Method,
        authid: Option<String>,
        authrole: Option<String>,
        secret: Option<String>,
        key: Option<(SigningKey, String)>,
    ) -> ClientAuth {
        ClientAuth {
            method,
            hello_name: method.hello_name().to_string(),
            authid,
            authrole,
            secret,
            key,
            derived: Mutex::new(Vec::new()),
        }
    }

    /// What each method needs, for credentials not built from checked flags.
    fn check(&self) -> Result<(), String> {
        let name = self.method.name();
        match self.method {
            Method::Ticket | Method::WampCra | Method::Scram if self.secret.is_none() => Err(
                format!("--authmethod {name} needs --secret or --secret-file"),
            ),
            Method::Ticket | Method::WampCra | Method::Scram if self.authid.is_none() => {
                Err(format!("--authmethod {name} needs --authid"))
            }
            Method::Cryptosign if self.key.is_none() => {
                Err("--authmethod cryptosign needs --private-key or --private-key-file".into())
            }
            _ => Ok(()),
        }
    }

    /// Cryptosign's public key in hex.
    pub fn public_key(&self) -> Option<&str> {
        self.key.as_ref().map(|(_, public)| public.as_str())
    }

    /// The per-session state of one authentication, with a fresh SCRAM client nonce.
    pub fn start(&self) -> Handshake<'_> {
        let nonce = (self.method == Method::Scram).then(|| {
            let mut bytes = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
            credentials::base64_encode(&bytes)
        });
        Handshake {
            auth: self,
            client_nonce: nonce,
            challenged: false,
            scram_pending: None,
        }
    }

    /// The key for `derivation`, derived once per run. The lock is held while deriving, so
    /// sessions on other threads asking for the same key wait for it instead of repeating it.
    fn derived_key(
        &self,
        derivation: Derivation,
        derive: impl FnOnce() -> Result<Vec<u8>, String>,
    ) -> Result<Arc<[u8]>, String> {
        let mut cache = self.derived.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, key)) = cache.iter().find(|(d, _)| *d == derivation) {
            return Ok(key.clone());
        }
        let key: Arc<[u8]> = derive()?.into();
        if cache.len() < MAX_CACHED_KEYS {
            cache.push((derivation, key.clone()));
        }
        Ok(key)
    }

    /// How many distinct keys were derived and kept (the tests check the once-per-run claim).
    pub fn derived_keys(&self) -> usize {
        self.derived.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn secret(&self) -> Result<&str, String> {
        self.secret
            .as_deref()
            .ok_or_else(|| format!("{} needs a secret", self.method.name()))
    }
}

/// One session's authentication: what HELLO carries, the answer to the CHALLENGE, the check of
/// WELCOME.
pub struct Handshake<'a> {
    auth: &'a ClientAuth,
    client_nonce: Option<String>,
    challenged: bool,
    /// SCRAM: the SaltedPassword and AuthMessage, to check the router's signature in WELCOME.
    scram_pending: Option<(Arc<[u8]>, String)>,
}

/// The AUTHENTICATE a CHALLENGE is answered with.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub signature: String,
    pub extra: Dict<'static>,
}

fn get_u32(extra: &Dict<'_>, key: &str, default: u32, max: u64) -> Result<u32, String> {
    match extra.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => match value.as_u64() {
            Some(n) if (1..=max).contains(&n) => Ok(n as u32),
            _ => Err(format!(
                "CHALLENGE.Extra.{key} must be an integer in 1..={max}"
            )),
        },
    }
}

fn get_str<'e>(extra: &'e Dict<'_>, key: &str) -> Result<&'e str, String> {
    extra
        .get_str(key)
        .ok_or_else(|| format!("CHALLENGE.Extra.{key} (a string) is missing"))
}

/// RFC 5802: the server's nonce extends the client's; anything else is not this exchange.
/// Routers extend either the text (the RFC) or the bytes (Crossbar.io: base64 of client nonce
/// bytes followed by its own, so the padded client text is not a prefix).
fn extends(nonce: &str, client_nonce: &str) -> bool {
    if nonce.len() > client_nonce.len() && nonce.starts_with(client_nonce) {
        return true;
    }
    match (
        credentials::base64_decode(nonce),
        credentials::base64_decode(client_nonce),
    ) {
        (Some(combined), Some(client)) => {
            combined.len() > client.len() && combined.starts_with(&client)
        }
        _ => false,
    }
}

/// Channel binding needs the TLS connection's own data, which these sessions do not have.
fn refuse_channel_binding(extra: &Dict<'_>) -> Result<(), String> {
    match extra.get("channel_binding") {
        None | Some(Value::Null) => Ok(()),
        Some(other) => Err(format!(
            "the router asks for channel binding ({other:?}), which wampring-load does not do"
        )),
    }
}

impl Handshake<'_> {
    /// A handshake with a given SCRAM client nonce (tests compare against fixed values).
    pub fn with_client_nonce<'a>(auth: &'a ClientAuth, nonce: &str) -> Handshake<'a> {
        let mut handshake = auth.start();
        handshake.client_nonce = Some(nonce.to_string());
        handshake
    }

    /// Adds `authmethods`, `authid`, `authrole` and `authextra` to HELLO.Details.
    pub fn hello_details(&self, details: &mut Dict<'static>) {
        let auth = self.auth;
        details.insert(
            "authmethods",
            Value::List(vec![Value::from(auth.hello_name.clone())]),
        );
        if let Some(authid) = &auth.authid {
            details.insert("authid", authid.clone());
        }
        if let Some(authrole) = &auth.authrole {
            details.insert("authrole", authrole.clone());
        }
        let mut extra = Dict::new();
        match auth.method {
            Method::Cryptosign => {
                if let Some(public) = auth.public_key() {
                    extra.insert("pubkey", public.to_string());
                }
            }
            Method::Scram => {
                if let Some(nonce) = &self.client_nonce {
                    extra.insert("nonce", nonce.clone());
                }
            }
            _ => {}
        }
        if !extra.is_empty() {
            details.insert("authextra", extra);
        }
    }

    /// The AUTHENTICATE for a CHALLENGE. Errors say why the challenge cannot be answered.
    pub fn answer(&mut self, method: &str, extra: &Dict<'_>) -> Result<Answer, String> {
        let auth = self.auth;
        if self.challenged {
            return Err("a second CHALLENGE".into());
        }
        self.challenged = true;
        if method != auth.hello_name && !auth.method.answers(method) {
            return Err(format!(
                "the router challenged with {method}, but --authmethod is {}",
                auth.method.name()
            ));
        }
        let plain = |signature: String| Answer {
            signature,
            extra: Dict::new(),
        };
        match auth.method {
            Method::Anonymous => Err("anonymous authentication was challenged".into()),
            Method::Ticket => Ok(plain(auth.secret()?.to_string())),
            Method::WampCra => self.wampcra(extra).map(plain),
            Method::Cryptosign => self.cryptosign(extra).map(plain),
            Method::Scram => self.scram(extra),
        }
    }

    fn wampcra(&self, extra: &Dict<'_>) -> Result<String, String> {
        let auth = self.auth;
        let challenge = get_str(extra, "challenge")?;
        let secret = auth.secret()?;
        let Some(salt) = extra.get_str("salt") else {
            return Ok(wampcra::sign(secret.as_bytes(), challenge));
        };
        let iterations = get_u32(
            extra,
            "iterations",
            wampcra::DEFAULT_ITERATIONS,
            MAX_PBKDF2_ITERATIONS,
        )?;
        let keylen = get_u32(extra, "keylen", wampcra::DEFAULT_KEYLEN, MAX_KEYLEN)?;
        let derivation = Derivation::WampCra {
            salt: salt.to_string(),
            iterations,
            keylen,
        };
        let key = auth.derived_key(derivation, || {
            Ok(wampcra::derive_key(secret, salt, iterations, keylen).into_bytes())
        })?;
        Ok(wampcra::sign(&key, challenge))
    }

    fn cryptosign(&self, extra: &Dict<'_>) -> Result<String, String> {
        refuse_channel_binding(extra)?;
        let (key, _) = self
            .auth
            .key
            .as_ref()
            .ok_or("cryptosign needs a private key")?;
        let challenge = hex::decode(get_str(extra, "challenge")?)
            .map_err(|e| format!("CHALLENGE.Extra.challenge is not hex: {e}"))?;
        if challenge.len() != cryptosign::CHALLENGE_LEN {
            return Err(format!(
                "CHALLENGE.Extra.challenge has {} bytes, not {}",
                challenge.len(),
                cryptosign::CHALLENGE_LEN
            ));
        }
        Ok(cryptosign::sign(key, &challenge))
    }

    fn scram(&mut self, extra: &Dict<'_>) -> Result<Answer, String> {
        refuse_channel_binding(extra)?;
        let auth = self.auth;
        let client_nonce = self
            .client_nonce
            .as_deref()
            .ok_or("no SCRAM client nonce")?;
        let nonce = get_str(extra, "nonce")?;
        if !extends(nonce, client_nonce) {
            return Err("CHALLENGE.Extra.nonce does not extend the client nonce".into());
        }
        let salt_text = get_str(extra, "salt")?;
        let salt =
            credentials::base64_decode(salt_text).ok_or("CHALLENGE.Extra.salt is not base64")?;
        let kdf_name = get_str(extra, "kdf")?;
        let kdf = match kdf_name {
            // The digest spells it argon2id13; Autobahn and Crossbar.io argon2id-13.
            "argon2id-13" | "argon2id13" => scram::Kdf::Argon2id13 {
                iterations: get_u32(extra, "iterations", 0, MAX_ARGON2_ITERATIONS)?,
                memory: get_u32(extra, "memory", 0, MAX_ARGON2_MEMORY_KIB)?,
            },
            "pbkdf2" => scram::Kdf::Pbkdf2 {
                iterations: get_u32(extra, "iterations", 0, MAX_PBKDF2_ITERATIONS)?,
            },
            other => return Err(format!("unknown SCRAM kdf {other:?}")),
        };
        if kdf.iterations() == 0 || matches!(kdf, scram::Kdf::Argon2id13 { memory: 0, .. }) {
            return Err(format!(
                "CHALLENGE.Extra lacks the {} cost (iterations, memory)",
                kdf.name()
            ));
        }
        let password = auth.secret()?;
        let derivation = Derivation::Scram {
            salt: salt_text.to_string(),
            kdf,
        };
        let salted =
            auth.derived_key(derivation, || scram::salted_password(password, &salt, kdf))?;
        let authid = auth.authid.as_deref().unwrap_or("");
        let message =
            scram::auth_message(authid, client_nonce, nonce, salt_text, kdf.iterations(), "");
        let signature = scram::client_proof(&salted, &message);
        self.scram_pending = Some((salted, message));
        let mut reply = Dict::new();
        reply.insert("nonce", nonce.to_string());
        reply.insert("channel_binding", Value::Null);
        Ok(Answer {
            signature,
            extra: reply,
        })
    }

    /// Checks WELCOME.Details: after SCRAM, the router must prove it knows ServerKey.
    pub fn check_welcome(&self, details: &Dict<'_>) -> Result<(), String> {
        let Some((salted, message)) = &self.scram_pending else {
            return Ok(());
        };
        let extra = details.get_dict("authextra");
        // Autobahn and Crossbar.io name it scram_server_signature; the digest, verifier.
        let sent = extra
            .and_then(|e| {
                e.get_str("scram_server_signature")
                    .or(e.get_str("verifier"))
            })
            .ok_or(
                "WELCOME carries no SCRAM server signature (authextra.scram_server_signature)",
            )?;
        let expected = scram::server_signature(&scram::server_key(salted), message);
        let sent = credentials::base64_decode(sent.trim());
        if sent.is_some() && sent == credentials::base64_decode(&expected) {
            Ok(())
        } else {
            Err("the router's SCRAM server signature is wrong".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(method: Method, authid: &str, secret: &str) -> ClientAuth {
        ClientAuth::new(method, Some(authid.into()), None, Some(secret.into()), None)
    }

    fn extra(entries: &[(&'static str, Value<'static>)]) -> Dict<'static> {
        let mut dict = Dict::new();
        for (key, value) in entries {
            dict.insert(*key, value.clone());
        }
        dict
    }

    fn s(text: &str) -> Value<'static> {
        Value::from(text.to_string())
    }

    // Expected values below come from Autobahn|Python 26.10 (tests/interop/.venv), as noted
    // at each test.

    #[test]
    fn ticket_sends_the_ticket() {
        let auth = auth(Method::Ticket, "joe", "s3cret-ticket");
        let mut handshake = auth.start();
        let answer = handshake.answer("ticket", &Dict::new()).unwrap();
        assert_eq!(answer.signature, "s3cret-ticket");
        assert!(answer.extra.is_empty());
    }

    /// `auth.compute_wcs(b"secret1", challenge)` for the challenge string below.
    #[test]
    fn wampcra_signs_the_challenge_with_the_secret() {
        let challenge = r#"{"authid": "joe", "authrole": "user", "authmethod": "wampcra", "authprovider": "static", "nonce": "abc", "timestamp": "2026-12-02T19:00:00.000Z", "session": 123}"#;
        let auth = auth(Method::WampCra, "joe", "secret1");
        let answer = auth
            .start()
            .answer("wampcra", &extra(&[("challenge", s(challenge))]))
            .unwrap();
        assert_eq!(
            answer.signature,
            "7zUkGEvs69hIfti9KVbLYLvtifJ1ayklpa0cFNCIDVY="
        );
        assert_eq!(auth.derived_keys(), 0);
    }

    /// `auth.derive_key("secret1", "salt123", 100, 16)`, then `compute_wcs` with that key.
    #[test]
    fn salted_wampcra_derives_the_key_once_per_run() {
        let auth = auth(Method::WampCra, "joe", "secret1");
        let challenge = extra(&[
            ("challenge", s("the challenge")),
            ("salt", s("salt123")),
            ("iterations", Value::UInt(100)),
            ("keylen", Value::UInt(16)),
        ]);
        let first = auth.start().answer("wampcra", &challenge).unwrap();
        assert_eq!(
            first.signature,
            "l4Ds1DLj8GUxj8IteehDq3MHIbqEGyA376tC7TFG18g="
        );
        let second = auth.start().answer("wampcra", &challenge).unwrap();
        assert_eq!(second, first);
        assert_eq!(auth.derived_keys(), 1);
        // Crossbar.io's defaults when the router leaves iterations and keylen out.
        let defaults = extra(&[("challenge", s("the challenge")), ("salt", s("salt123"))]);
        let answer = auth.start().answer("wampcra", &defaults).unwrap();
        assert_eq!(
            answer.signature,
            "WY+RW65BJ0HySUOxH8IvyNCpW7GYRnpk8APeuiVzkhU="
        );
        assert_eq!(auth.derived_keys(), 2);
    }

    /// `cryptosign.CryptosignKey.from_bytes(bytes(range(32))).sign_challenge` over the
    /// challenge below (SHA-256 of "challenge"; no channel binding): hex of signature and
    /// challenge. (Autobahn 26.11.1 from the Crossbar.io venv: the interop venv lacks PyNaCl.)
    #[test]
    fn cryptosign_signs_the_challenge_bytes() {
        let seed = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        let key = cryptosign::parse_private_key(seed).unwrap();
        let public = cryptosign::public_key_of(&key);
        assert_eq!(
            public,
            "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
        );
        let auth = ClientAuth::new(Method::Cryptosign, None, None, None, Some((key, public)));
        let handshake = auth.start();
        let mut details = Dict::new();
        handshake.hello_details(&mut details);
        assert_eq!(
            details.get_dict("authextra").unwrap().get_str("pubkey"),
            Some("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")
        );
        assert!(details.get("authid").is_none());
        let challenge = "2dd00bd77e0222ced882665481a9c1d9f907309d16e05ed007a1ea63928477a9";
        let answer = auth
            .start()
            .answer(
                "cryptosign",
                &extra(&[
                    ("challenge", s(challenge)),
                    ("channel_binding", Value::Null),
                ]),
            )
            .unwrap();
        assert_eq!(
            answer.signature,
            "7d54cfb4a3c025aaec9ab4b3d03bf77bf63da96811d0a3c3ed0375e203bb21c5\
             4619f694a789981180d2cd0d894ba2b2b6421218df2c2ddc24bf1811e39c8b05\
             2dd00bd77e0222ced882665481a9c1d9f907309d16e05ed007a1ea63928477a9"
        );
        let mut other = auth.start();
        assert!(other
            .answer("cryptosign", &extra(&[("challenge", s("abcd"))]))
            .is_err());
        let bound = extra(&[
            ("challenge", s(challenge)),
            ("channel_binding", s("tls-unique")),
        ]);
        assert!(auth.start().answer("cryptosign", &bound).is_err());
    }

    /// Autobahn's `AuthScram(authid="alice", password="pw")` with client nonce
    /// "Y2xpZW50bm9uY2UxMjM0NQ==" answering the challenge below, and the server signature
    /// its `on_welcome` accepts.
    #[test]
    fn scram_argon2_answers_with_the_client_proof_and_checks_the_server() {
        let auth = auth(Method::Scram, "alice", "pw");
        let client_nonce = "Y2xpZW50bm9uY2UxMjM0NQ==";
        let mut handshake = Handshake::with_client_nonce(&auth, client_nonce);
        let mut details = Dict::new();
        handshake.hello_details(&mut details);
        assert_eq!(
            details.get("authmethods"),
            Some(&Value::List(vec![s("wamp-scram")]))
        );
        assert_eq!(details.get_str("authid"), Some("alice"));
        assert_eq!(
            details.get_dict("authextra").unwrap().get_str("nonce"),
            Some(client_nonce)
        );
        let nonce = format!("{client_nonce}c2VydmVybm9uY2U=");
        let challenge = extra(&[
            ("nonce", s(&nonce)),
            ("salt", s("MDEyMzQ1Njc4OWFiY2RlZg==")),
            ("kdf", s("argon2id-13")),
            ("iterations", Value::UInt(16)),
            ("memory", Value::UInt(64)),
        ]);
        let answer = handshake.answer("scram", &challenge).unwrap();
        assert_eq!(
            answer.signature,
            "HMaAeJbxPVIfzD6BGCm5HFIkKP034b6ljKFnKSabccA="
        );
        assert_eq!(answer.extra.get_str("nonce"), Some(nonce.as_str()));
        assert_eq!(answer.extra.get("channel_binding"), Some(&Value::Null));
        let mut welcome_extra = Dict::new();
        welcome_extra.insert(
            "scram_server_signature",
            "FgAaVKCQl/KeAk5q/Jx5aDHVfELs0hlj+bZrh8tS5+s=",
        );
        let mut welcome = Dict::new();
        welcome.insert("authextra", welcome_extra);
        handshake.check_welcome(&welcome).unwrap();
        let mut forged_extra = Dict::new();
        forged_extra.insert(
            "scram_server_signature",
            credentials::base64_encode(&[0u8; 32]),
        );
        let mut forged = Dict::new();
        forged.insert("authextra", forged_extra);
        assert!(handshake.check_welcome(&forged).is_err());
        assert!(handshake.check_welcome(&Dict::new()).is_err());
        // A second session reuses the salted password.
        let mut again = auth.start();
        let mut hello = Dict::new();
        again.hello_details(&mut hello);
        let fresh = hello
            .get_dict("authextra")
            .unwrap()
            .get_str("nonce")
            .unwrap()
            .to_string();
        assert_eq!(credentials::base64_decode(&fresh).unwrap().len(), 16);
        let challenge = extra(&[
            ("nonce", s(&format!("{fresh}c2VydmVy"))),
            ("salt", s("MDEyMzQ1Njc4OWFiY2RlZg==")),
            ("kdf", s("argon2id-13")),
            ("iterations", Value::UInt(16)),
            ("memory", Value::UInt(64)),
        ]);
        again.answer("wamp-scram", &challenge).unwrap();
        assert_eq!(auth.derived_keys(), 1);
        // Crossbar.io's name for it, offered with --hello-authmethod.
        let mut crossbar = self::auth(Method::Scram, "alice", "pw");
        crossbar.hello_name = "scram".into();
        let mut hello = Dict::new();
        crossbar.start().hello_details(&mut hello);
        assert_eq!(
            hello.get("authmethods"),
            Some(&Value::List(vec![s("scram")]))
        );
    }

    /// As above with `kdf: pbkdf2`, 1000 iterations, over the base64-decoded salt (as the
    /// router's credential is made, `credentials::scram::derive`). Autobahn's own client
    /// cannot do this one (its `_hash_pbkdf2_secret` raises on the text salt), so the value is
    /// its `AuthScram` formula computed with `hashlib.pbkdf2_hmac("sha256", b"pw", salt, 1000)`.
    #[test]
    fn scram_pbkdf2_answers_with_the_client_proof() {
        let auth = auth(Method::Scram, "alice", "pw");
        let client_nonce = "Y2xpZW50bm9uY2UxMjM0NQ==";
        let mut handshake = Handshake::with_client_nonce(&auth, client_nonce);
        let nonce = format!("{client_nonce}c2VydmVybm9uY2U=");
        let challenge = extra(&[
            ("nonce", s(&nonce)),
            ("salt", s("MDEyMzQ1Njc4OWFiY2RlZg==")),
            ("kdf", s("pbkdf2")),
            ("iterations", Value::UInt(1000)),
        ]);
        let answer = handshake.answer("scram", &challenge).unwrap();
        assert_eq!(
            answer.signature,
            "y8B/CjfAlyuZ9WRNbnk13Re0xsqyG8mXb6cXPPYdZdU="
        );
    }

    #[test]
    fn challenges_that_cannot_be_answered_are_errors() {
        let auth = auth(Method::Scram, "alice", "pw");
        let client_nonce = "Y2xpZW50bm9uY2UxMjM0NQ==";
        let base = |nonce: &str, kdf: &str, iterations: u64| {
            extra(&[
                ("nonce", s(nonce)),
                ("salt", s("c2FsdA==")),
                ("kdf", s(kdf)),
                ("iterations", Value::UInt(iterations)),
                ("memory", Value::UInt(64)),
            ])
        };
        let good_nonce = format!("{client_nonce}xyz");
        let answer =
            |e: &Dict<'_>| Handshake::with_client_nonce(&auth, client_nonce).answer("scram", e);
        assert!(answer(&base("otherxyz", "pbkdf2", 10)).is_err());
        assert!(answer(&base(client_nonce, "pbkdf2", 10)).is_err());
        assert!(answer(&base(&good_nonce, "md5", 10)).is_err());
        assert!(answer(&base(&good_nonce, "pbkdf2", 0)).is_err());
        assert!(answer(&base(&good_nonce, "argon2id-13", 1_000_000)).is_err());
        assert!(answer(&base(&good_nonce, "pbkdf2", 10)).is_ok());
        // Crossbar.io's form: base64 of the client nonce's bytes and the server's.
        let mut bytes = credentials::base64_decode(client_nonce).unwrap();
        bytes.extend_from_slice(&[9u8; 16]);
        let crossbar_nonce = credentials::base64_encode(&bytes);
        assert!(!crossbar_nonce.starts_with(client_nonce));
        assert!(answer(&base(&crossbar_nonce, "pbkdf2", 10)).is_ok());
        bytes[0] ^= 1;
        let other = credentials::base64_encode(&bytes);
        assert!(answer(&base(&other, "pbkdf2", 10)).is_err());
        // The wrong method, and a second challenge.
        let mut handshake = Handshake::with_client_nonce(&auth, client_nonce);
        assert!(handshake.answer("wampcra", &Dict::new()).is_err());
        assert!(handshake
            .answer("scram", &base(&good_nonce, "pbkdf2", 10))
            .is_err());
        let cra = self::auth(Method::WampCra, "joe", "k");
        assert!(cra.start().answer("wampcra", &Dict::new()).is_err());
        let hostile = extra(&[
            ("challenge", s("c")),
            ("salt", s("x")),
            ("iterations", Value::UInt(u64::MAX)),
        ]);
        assert!(cra.start().answer("wampcra", &hostile).is_err());
        let anonymous = ClientAuth::new(Method::Anonymous, None, None, None, None);
        assert!(anonymous.start().answer("anonymous", &Dict::new()).is_err());
    }

    #[test]
    fn hello_without_authid_or_extra_for_anonymous() {
        let auth = ClientAuth::new(Method::Anonymous, None, Some("guest".into()), None, None);
        let mut details = Dict::new();
        auth.start().hello_details(&mut details);
        assert_eq!(
            details.get("authmethods"),
            Some(&Value::List(vec![s("anonymous")]))
        );
        assert_eq!(details.get_str("authrole"), Some("guest"));
        assert!(details.get("authid").is_none());
        assert!(details.get("authextra").is_none());
    }
}
