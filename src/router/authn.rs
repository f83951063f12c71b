//! Authentication (digest §11): which methods a listener accepts, the principals of a realm,
//! and the CHALLENGE/AUTHENTICATE exchange between HELLO and WELCOME — a session in
//! `Phase::Authenticating` holds one [`Authenticating`], which knows what answer it waits for.
//!
//! Methods: `anonymous` (no challenge; the listener names the role), `ticket` (the secret is
//! sent; kept in the clear or as an argon2id hash), `wampcra` (HMAC over a challenge, plain or
//! salted), `cryptosign` (an Ed25519 signature over 32 random bytes), `wamp-scram` (SCRAM with
//! SHA-256, argon2id or PBKDF2; the router keeps only StoredKey and ServerKey and proves itself
//! in WELCOME). The cryptography is in `crate::credentials`.
//!
//! No user enumeration: an unknown authid, a principal without a secret for the method asked,
//! and a wrong secret go through the same steps — a challenge shaped like a real one (its salt
//! and role derived from a key made from the configuration, so it is the same on every shard
//! and every attempt) and the same verification work against decoy material — and end in the
//! same ABORT `wamp.error.authentication_denied`. The log line names the cause, never a secret.
//!
//! Checking an argon2id ticket hash takes tens of milliseconds: it never runs on the shard's
//! thread. The router asks the runtime to run it elsewhere ([`Action::Check`]) and continues
//! when [`Router::handle_checked`] brings the outcome. Everything else is cheap enough inline.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::authz::RoleId;
use super::internal_caller::Purpose;
use super::outbox;
use super::realm::RealmId;
use super::session::{Identity, PeerFeatures, Phase};
use super::timers::{Timeout, TimerId};
use super::{uri, Action, CloseReason, Millis, Router, SessionKey};
use crate::credentials::{self, cryptosign, scram, ticket, wampcra};
use crate::wire::{Dict, Message, Value};

/// An authentication method.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    Anonymous,
    Ticket,
    WampCra,
    Cryptosign,
    Scram,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 5] = [
        AuthMethod::Anonymous,
        AuthMethod::Ticket,
        AuthMethod::WampCra,
        AuthMethod::Cryptosign,
        AuthMethod::Scram,
    ];

    /// The name in HELLO, WELCOME and the config.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Anonymous => "anonymous",
            AuthMethod::Ticket => "ticket",
            AuthMethod::WampCra => "wampcra",
            AuthMethod::Cryptosign => "cryptosign",
            AuthMethod::Scram => "wamp-scram",
        }
    }

    /// The method a HELLO names; `scram` is Autobahn's name for `wamp-scram`.
    pub fn from_name(name: &str) -> Option<AuthMethod> {
        match name {
            "scram" => Some(AuthMethod::Scram),
            _ => AuthMethod::ALL
                .into_iter()
                .find(|method| method.name() == name),
        }
    }
}

/// What one listener accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerAuth {
    /// Methods sessions of this listener may use. A HELLO's methods are tried in the order the
    /// client lists them; the first one here wins.
    pub methods: Vec<AuthMethod>,
    /// The role an anonymous session gets (its authid is its session id).
    pub anonymous_role: String,
}

impl Default for ListenerAuth {
    fn default() -> Self {
        ListenerAuth {
            methods: vec![AuthMethod::Anonymous],
            anonymous_role: "anonymous".into(),
        }
    }
}

/// Secret material that must not reach a log line through `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(pub T);

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// How a principal's ticket is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TicketSecret {
    /// In the clear (compared in constant time).
    Plain(Secret<String>),
    /// An argon2id PHC string (`wampring auth ticket` makes one).
    Argon2id(Arc<str>),
}

/// How a principal's WAMP-CRA secret is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WampCraSecret {
    /// The shared secret itself: the HMAC key.
    Plain(Secret<String>),
    /// The salted key (base64 of PBKDF2, `wampring auth wampcra` makes one); the client
    /// derives the same from the secret and the salt, iterations and key length the CHALLENGE
    /// names.
    Salted {
        salt: String,
        iterations: u32,
        keylen: u32,
        key: Secret<String>,
    },
}

/// One principal of a realm: who it is, the role it gets, and its secret per method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub authid: String,
    pub role: String,
    pub ticket: Option<TicketSecret>,
    pub wampcra: Option<WampCraSecret>,
    pub cryptosign: Vec<VerifyingKey>,
    pub scram: Option<scram::Credential>,
}

impl Principal {
    /// A principal with no secret yet.
    pub fn new(authid: impl Into<String>, role: impl Into<String>) -> Principal {
        Principal {
            authid: authid.into(),
            role: role.into(),
            ticket: None,
            wampcra: None,
            cryptosign: Vec::new(),
            scram: None,
        }
    }

    /// Whether it can authenticate with `method`.
    pub fn has(&self, method: AuthMethod) -> bool {
        match method {
            AuthMethod::Anonymous => false,
            AuthMethod::Ticket => self.ticket.is_some(),
            AuthMethod::WampCra => self.wampcra.is_some(),
            AuthMethod::Cryptosign => !self.cryptosign.is_empty(),
            AuthMethod::Scram => self.scram.is_some(),
        }
    }
}

/// A realm's principals, indexed by authid and by Cryptosign public key.
#[derive(Default)]
pub(crate) struct Principals {
    list: Vec<Principal>,
    by_authid: super::FastMap<Box<str>, usize>,
    by_pubkey: super::FastMap<[u8; 32], usize>,
}

impl Principals {
    pub(crate) fn new(configured: &[Principal]) -> Principals {
        let mut principals = Principals {
            list: configured.to_vec(),
            by_authid: super::fast_map(),
            by_pubkey: super::fast_map(),
        };
        for (index, principal) in configured.iter().enumerate() {
            principals
                .by_authid
                .insert(principal.authid.as_str().into(), index);
            for key in &principal.cryptosign {
                principals.by_pubkey.insert(key.to_bytes(), index);
            }
        }
        principals
    }

    /// The principal `authid` if it can use `method`.
    fn with_method(&self, authid: &str, method: AuthMethod) -> Option<&Principal> {
        let principal = &self.list[*self.by_authid.get(authid)?];
        principal.has(method).then_some(principal)
    }

    fn by_pubkey(&self, key: &VerifyingKey) -> Option<&Principal> {
        Some(&self.list[*self.by_pubkey.get(&key.to_bytes())?])
    }

    /// The first principal that uses `method`: a decoy challenge copies its shape.
    fn first_with(&self, method: AuthMethod) -> Option<&Principal> {
        self.list.iter().find(|principal| principal.has(method))
    }
}

/// A key derived from the configured secret material: decoy challenges are made from it, so
/// an unknown authid gets the same challenge on every shard and on every attempt.
pub(crate) fn decoy_key(realms: &[super::RealmConfig]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"wampring decoy challenges");
    for realm in realms {
        hash.update(realm.name.as_bytes());
        for principal in &realm.principals {
            hash.update(format!("{principal:?}").as_bytes());
            if let Some(TicketSecret::Plain(Secret(secret))) = &principal.ticket {
                hash.update(secret.as_bytes());
            }
            match &principal.wampcra {
                Some(WampCraSecret::Plain(Secret(secret))) => hash.update(secret.as_bytes()),
                Some(WampCraSecret::Salted { key, .. }) => hash.update(key.0.as_bytes()),
                None => {}
            }
        }
    }
    hash.finalize().into()
}

/// What authentication keeps of the HELLO, until WELCOME.
#[derive(Clone, Debug)]
pub(crate) struct HelloFacts {
    pub(crate) realm: RealmId,
    pub(crate) features: PeerFeatures,
    /// The method's name as the client wrote it (echoed in CHALLENGE).
    method_name: Box<str>,
    /// The authid the client claimed ("" when none).
    authid: Box<str>,
    /// `HELLO.Details.authrole`, which a dynamic authenticator learns.
    authrole: Option<Box<str>>,
    /// Cryptosign: the public key the client says it holds.
    pubkey: Option<VerifyingKey>,
    /// WAMP-SCRAM: the client's nonce.
    client_nonce: Option<Box<str>>,
}

/// A session between HELLO and WELCOME that authenticates with a challenge.
#[derive(Clone, Debug)]
pub(crate) struct Authenticating {
    pub(crate) deadline: TimerId,
    /// The session id WELCOME will carry (claimed already: a WAMP-CRA challenge names it).
    pub(crate) id: u64,
    pub(crate) method: AuthMethod,
    pub(crate) hello: HelloFacts,
    /// Who the session becomes if the answer is right; `None`: nobody, whatever it answers
    /// (unknown authid or key, or no secret for this method).
    principal: Option<(Box<str>, Box<str>)>,
    /// "static" (the config's principals) or "dynamic" (the realm's authenticator).
    provider: &'static str,
    expect: Expect,
    /// An offloaded check or the authenticator's answer is awaited under this token.
    pub(crate) checking: Option<u64>,
}

#[derive(Clone, Debug)]
enum Expect {
    /// The dynamic authenticator has not answered yet: no CHALLENGE went out.
    Principal,
    TicketPlain(Secret<String>),
    TicketHash(Arc<str>),
    /// The ticket goes to this dynamic authenticator (the one of the challenge), which decides.
    TicketDynamic(Box<AuthenticatorConfig>),
    WampCra {
        challenge: String,
        key: Secret<Vec<u8>>,
    },
    Cryptosign {
        challenge: [u8; 32],
        key: VerifyingKey,
    },
    Scram {
        auth_message: String,
        nonce: String,
        credential: scram::Credential,
    },
}

/// A realm's dynamic authenticator: a procedure the router calls to learn who a session is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatorConfig {
    pub procedure: String,
    /// The realm the procedure is registered in.
    pub realm: String,
    /// The methods it decides (ticket, wampcra, cryptosign); the others use the principals.
    pub methods: Vec<AuthMethod>,
}

/// A ticket check for the runtime to run off the shard's thread ([`Action::Check`]).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretCheck {
    ticket: Secret<String>,
    hash: Arc<str>,
}

impl SecretCheck {
    /// Whether the ticket matches (tens of milliseconds: argon2id).
    pub fn run(&self) -> bool {
        ticket::verify(&self.ticket.0, &self.hash)
    }
}

impl fmt::Debug for SecretCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretCheck")
    }
}

/// The HELLO facts a challenge carries over to WELCOME.
pub(crate) struct Hello<'a> {
    pub(crate) realm: RealmId,
    pub(crate) features: PeerFeatures,
    pub(crate) details: &'a Dict<'a>,
    /// The method's name as the client wrote it.
    pub(crate) method_name: &'a str,
}

/// JSON text of a string (the WAMP-CRA challenge is a JSON object inside a string).
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

impl Router {
    /// Decoy material for `what` about `authid`, the same on every shard.
    fn decoy(&self, what: &str, realm: RealmId, authid: &str) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(self.decoy_key);
        hash.update(what.as_bytes());
        hash.update(self.realms.get(realm).name.as_bytes());
        hash.update([0]);
        hash.update(authid.as_bytes());
        hash.finalize().into()
    }

    /// HELLO chose `method` (not anonymous): CHALLENGE, and wait for AUTHENTICATE (or first
    /// ask the realm's authenticator who the principal is).
    pub(super) fn challenge(
        &mut self,
        session: SessionKey,
        method: AuthMethod,
        hello: Hello<'_>,
        out: &mut Vec<Action>,
    ) {
        let authid = hello.details.get_str("authid").unwrap_or_default();
        let authextra = hello.details.get_dict("authextra");
        let mut facts = HelloFacts {
            realm: hello.realm,
            features: hello.features,
            method_name: hello.method_name.into(),
            authid: authid.into(),
            authrole: hello.details.get_str("authrole").map(Into::into),
            pubkey: None,
            client_nonce: None,
        };
        let problem = match method {
            AuthMethod::Anonymous => unreachable!("anonymous needs no challenge"),
            AuthMethod::Ticket | AuthMethod::WampCra | AuthMethod::Scram if authid.is_empty() => {
                Some(format!("{} needs HELLO.Details.authid", method.name()))
            }
            AuthMethod::Cryptosign => {
                let pubkey = authextra.and_then(|extra| extra.get_str("pubkey"));
                match pubkey.map(cryptosign::parse_public_key) {
                    Some(Ok(key)) => {
                        facts.pubkey = Some(key);
                        authextra
                            .and_then(|extra| extra.get_str("channel_binding"))
                            .map(|_| "cryptosign channel binding is not supported by this router".to_string())
                    }
                    _ => Some("cryptosign needs HELLO.Details.authextra.pubkey: an Ed25519 public key in hex".to_string()),
                }
            }
            AuthMethod::Scram => {
                let nonce = authextra.and_then(|extra| extra.get_str("nonce"));
                let binding = authextra.and_then(|extra| extra.get("channel_binding"));
                match nonce.filter(|nonce| !nonce.is_empty()) {
                    None => Some("wamp-scram needs HELLO.Details.authextra.nonce".to_string()),
                    Some(_) if !matches!(binding, None | Some(Value::Null)) => Some(
                        "wamp-scram channel binding is not supported by this router".to_string(),
                    ),
                    Some(nonce) => {
                        facts.client_nonce = Some(nonce.into());
                        None
                    }
                }
            }
            AuthMethod::Ticket | AuthMethod::WampCra => None,
        };
        if let Some(text) = problem {
            return self.refuse_authentication(session, uri::AUTHENTICATION_DENIED, text, out);
        }
        let dynamic = self.authenticator_of(hello.realm, method);
        let deadline = self.now.saturating_add(self.config.authenticate_timeout_ms);
        let auth = Authenticating {
            deadline: self.timers.arm(deadline, Timeout::Authenticate { session }),
            id: self.new_session_id(),
            method,
            hello: facts,
            principal: None,
            provider: if dynamic.is_some() {
                "dynamic"
            } else {
                "static"
            },
            expect: Expect::Principal,
            checking: None,
        };
        let id = auth.id;
        let state = &mut self.sessions[session];
        if let Phase::ExpectHello { deadline } = state.phase {
            self.timers.cancel(deadline);
        }
        state.phase = Phase::Authenticating(Box::new(auth));
        self.sessions.claim_id(id, session);
        match (dynamic, method) {
            (Some(_), AuthMethod::Ticket) | (None, _) => {
                let found = self.static_principal(session);
                self.send_challenge(session, found, out);
            }
            // WAMP-CRA and Cryptosign need the secret or the key before the CHALLENGE.
            (Some(authenticator), _) => self.ask_authenticator(session, &authenticator, None, out),
        }
    }

    /// The dynamic authenticator of `realm` for `method`, as configured now.
    fn authenticator_of(&self, realm: RealmId, method: AuthMethod) -> Option<AuthenticatorConfig> {
        let name = &*self.realms.get(realm).name;
        self.config.realms.iter().find_map(|configured| {
            let authenticator = configured.authenticator.as_ref()?;
            (*configured.name == *name && authenticator.methods.contains(&method))
                .then(|| authenticator.clone())
        })
    }

    /// The configured principal the challenged session claims to be, if it has a secret for
    /// the method (by authid, or by public key for Cryptosign).
    fn static_principal(&self, session: SessionKey) -> Option<Principal> {
        let Phase::Authenticating(auth) = &self.sessions[session].phase else {
            return None;
        };
        let principals = &self.realms.get(auth.hello.realm).principals;
        let authid = &*auth.hello.authid;
        match (auth.method, &auth.hello.pubkey) {
            (AuthMethod::Cryptosign, Some(key)) => principals
                .by_pubkey(key)
                .filter(|principal| authid.is_empty() || principal.authid == authid)
                .cloned(),
            (method, _) => principals.with_method(authid, method).cloned(),
        }
    }

    /// Sends the CHALLENGE of the challenged `session` for `found` (its principal, or `None`:
    /// a decoy shaped like a real one) and notes what answer it waits for.
    fn send_challenge(
        &mut self,
        session: SessionKey,
        found: Option<Principal>,
        out: &mut Vec<Action>,
    ) {
        let serializer = self.sessions[session].serializer;
        let Phase::Authenticating(auth) = &self.sessions[session].phase else {
            return;
        };
        let (method, id, provider) = (auth.method, auth.id, auth.provider);
        let hello = auth.hello.clone();
        let authid = &*hello.authid;
        let realm = self.realms.get(hello.realm);
        // A principal without a secret of this method, or without this Cryptosign key, is
        // nobody: the challenge is a decoy.
        let found = found.filter(|principal| match (method, &hello.pubkey) {
            (AuthMethod::Cryptosign, Some(key)) => principal.cryptosign.contains(key),
            _ => principal.has(method),
        });
        let mut extra = Dict::new();
        let expect = match method {
            AuthMethod::Anonymous => unreachable!("anonymous needs no challenge"),
            // Kept from the challenge on: a reload before the AUTHENTICATE does not change
            // who judges the ticket.
            AuthMethod::Ticket if provider == "dynamic" => {
                match self.authenticator_of(hello.realm, method) {
                    Some(authenticator) => Expect::TicketDynamic(Box::new(authenticator)),
                    None => Expect::TicketHash(ticket::decoy_hash().into()),
                }
            }
            AuthMethod::Ticket => match found
                .as_ref()
                .and_then(|principal| principal.ticket.clone())
            {
                Some(TicketSecret::Plain(secret)) => Expect::TicketPlain(secret),
                Some(TicketSecret::Argon2id(hash)) => Expect::TicketHash(hash),
                None => Expect::TicketHash(ticket::decoy_hash().into()),
            },
            AuthMethod::WampCra => {
                let shape = found
                    .as_ref()
                    .or_else(|| realm.principals.first_with(method));
                let role = shape.map_or("user", |principal| principal.role.as_str());
                let secret = match &found {
                    Some(principal) => principal.wampcra.clone().expect("has(WampCra)"),
                    None => {
                        let key =
                            credentials::base64_encode(&self.decoy("wampcra", hello.realm, authid));
                        match shape.and_then(|principal| principal.wampcra.as_ref()) {
                            Some(WampCraSecret::Salted {
                                iterations, keylen, ..
                            }) => WampCraSecret::Salted {
                                salt: credentials::base64_encode(
                                    &self.decoy("wampcra salt", hello.realm, authid)[..16],
                                ),
                                iterations: *iterations,
                                keylen: *keylen,
                                key: Secret(key),
                            },
                            _ => WampCraSecret::Plain(Secret(key)),
                        }
                    }
                };
                let nonce = credentials::base64_encode(&random_bytes::<16>());
                let timestamp = super::history::rfc3339_millis(self.wall_clock_ms());
                let challenge = format!(
                    "{{\"authid\": {}, \"authrole\": {}, \"authmethod\": \"wampcra\", \"authprovider\": {}, \"nonce\": {}, \"timestamp\": {}, \"session\": {id}}}",
                    json_string(authid),
                    json_string(role),
                    json_string(provider),
                    json_string(&nonce),
                    json_string(&timestamp),
                );
                extra.insert("challenge", Value::from(challenge.clone()));
                let key = match secret {
                    WampCraSecret::Plain(secret) => secret.0.into_bytes(),
                    WampCraSecret::Salted {
                        salt,
                        iterations,
                        keylen,
                        key,
                    } => {
                        extra.insert("salt", Value::from(salt));
                        extra.insert("iterations", u64::from(iterations));
                        extra.insert("keylen", u64::from(keylen));
                        key.0.into_bytes()
                    }
                };
                Expect::WampCra {
                    challenge,
                    key: Secret(key),
                }
            }
            AuthMethod::Cryptosign => {
                let key = hello.pubkey.expect("checked at HELLO");
                let challenge = random_bytes::<32>();
                extra.insert("challenge", Value::from(hex::encode(challenge)));
                extra.insert("channel_binding", Value::Null);
                Expect::Cryptosign { challenge, key }
            }
            AuthMethod::Scram => {
                let client_nonce = hello.client_nonce.as_deref().expect("checked at HELLO");
                let credential = match found.as_ref().and_then(|principal| principal.scram.clone())
                {
                    Some(credential) => credential,
                    None => {
                        let kdf = realm
                            .principals
                            .first_with(method)
                            .and_then(|principal| principal.scram.as_ref())
                            .map_or(scram::Kdf::DEFAULT_ARGON2, |credential| credential.kdf);
                        scram::Credential {
                            kdf,
                            salt: self.decoy("scram salt", hello.realm, authid)[..16].to_vec(),
                            stored_key: self.decoy("scram stored", hello.realm, authid),
                            server_key: self.decoy("scram server", hello.realm, authid),
                        }
                    }
                };
                let nonce = format!(
                    "{client_nonce}{}",
                    credentials::base64_encode(&random_bytes::<16>())
                );
                let salt = credentials::base64_encode(&credential.salt);
                let iterations = credential.kdf.iterations();
                extra.insert("nonce", Value::from(nonce.clone()));
                extra.insert("salt", Value::from(salt.clone()));
                extra.insert("kdf", credential.kdf.name());
                extra.insert("iterations", u64::from(iterations));
                if let scram::Kdf::Argon2id13 { memory, .. } = credential.kdf {
                    extra.insert("memory", u64::from(memory));
                }
                let auth_message =
                    scram::auth_message(authid, client_nonce, &nonce, &salt, iterations, "");
                Expect::Scram {
                    auth_message,
                    nonce,
                    credential,
                }
            }
        };
        let principal = found.map(|principal| {
            (
                Box::<str>::from(principal.authid.as_str()),
                Box::<str>::from(principal.role.as_str()),
            )
        });
        if let Phase::Authenticating(auth) = &mut self.sessions[session].phase {
            auth.principal = principal;
            auth.expect = expect;
            auth.checking = None;
        }
        let challenge = Message::Challenge {
            method: Cow::Owned(hello.method_name.to_string()),
            extra,
        };
        self.send(out, session, serializer, &challenge);
        self.stats.challenges_sent += 1;
    }

    /// AUTHENTICATE of a challenged session.
    pub(super) fn handle_authenticate(
        &mut self,
        session: SessionKey,
        signature: &str,
        extra: &Dict<'_>,
        out: &mut Vec<Action>,
    ) {
        let Phase::Authenticating(state) = &self.sessions[session].phase else {
            return;
        };
        if state.checking.is_some() {
            return self.protocol_violation(
                session,
                "AUTHENTICATE again while the first one is being checked",
                out,
            );
        }
        let right = match &state.expect {
            Expect::TicketPlain(kept) => ticket::equals_plain(signature, &kept.0),
            Expect::TicketHash(hash) => {
                let token = self.next_check;
                self.next_check += 1;
                let check = SecretCheck {
                    ticket: Secret(signature.to_string()),
                    hash: hash.clone(),
                };
                if let Phase::Authenticating(state) = &mut self.sessions[session].phase {
                    state.checking = Some(token);
                }
                out.push(Action::Check {
                    session,
                    token,
                    check,
                });
                return;
            }
            Expect::WampCra { challenge, key } => wampcra::verify(&key.0, challenge, signature),
            Expect::Cryptosign { challenge, key } => cryptosign::verify(key, challenge, signature),
            Expect::Scram {
                auth_message,
                nonce,
                credential,
            } => {
                let same_nonce = extra.get_str("nonce").map_or(true, |sent| sent == nonce);
                scram::verify_proof(credential, auth_message, signature) && same_nonce
            }
            Expect::TicketDynamic(authenticator) => {
                let authenticator = authenticator.clone();
                self.ask_authenticator(session, &authenticator, Some(signature), out);
                return;
            }
            Expect::Principal => {
                return self.protocol_violation(session, "AUTHENTICATE before CHALLENGE", out)
            }
        };
        self.authenticated(session, right, out);
    }

    /// Asks the realm's dynamic authenticator who the challenged `session` is: the CALL
    /// `procedure(realm, authid, details)` from the router (Crossbar.io's signature); `details`
    /// has `authmethod`, `authid`, `authrole` (asked for), `authextra`, `session`, `transport`
    /// and, for a ticket, `ticket`.
    fn ask_authenticator(
        &mut self,
        session: SessionKey,
        authenticator: &AuthenticatorConfig,
        ticket: Option<&str>,
        out: &mut Vec<Action>,
    ) {
        let token = self.next_check;
        self.next_check += 1;
        let state = &self.sessions[session];
        let Phase::Authenticating(auth) = &state.phase else {
            return;
        };
        let realm_name = self.realms.get(auth.hello.realm).name.to_string();
        let mut details = Dict::new();
        details.insert("authmethod", auth.method.name());
        details.insert("authid", Value::from(auth.hello.authid.to_string()));
        if let Some(authrole) = &auth.hello.authrole {
            details.insert("authrole", Value::from(authrole.to_string()));
        }
        let mut authextra = Dict::new();
        if let Some(key) = &auth.hello.pubkey {
            authextra.insert("pubkey", Value::from(hex::encode(key.to_bytes())));
        }
        details.insert("authextra", Value::Dict(authextra));
        details.insert("session", auth.id);
        let mut transport = Dict::new();
        transport.insert("type", state.transport.kind);
        transport.insert("peer", Value::from(state.transport.peer.clone()));
        transport.insert("secure", state.transport.secure);
        details.insert("transport", Value::Dict(transport));
        if let Some(ticket) = ticket {
            details.insert("ticket", Value::from(ticket.to_string()));
        }
        let args = vec![
            Value::from(realm_name),
            Value::from(auth.hello.authid.to_string()),
            Value::Dict(details),
        ];
        if let Phase::Authenticating(auth) = &mut self.sessions[session].phase {
            auth.checking = Some(token);
        }
        let purpose = Purpose::Authenticate { session, token };
        self.call_from_router(
            &authenticator.realm,
            &authenticator.procedure,
            args,
            purpose,
            out,
        );
    }

    /// The dynamic authenticator answered about `session` (asked under `token`): a role, or a
    /// dict with `role` and optionally `authid`; for WAMP-CRA also `secret` (and `salt`,
    /// `iterations`, `keylen`), for Cryptosign `pubkey`. Its ERROR ends the session with that
    /// error in the log and the one denial ABORT to the client; no answer at all (no callee,
    /// timeout) with `wamp.error.authentication_failed`.
    pub(super) fn authenticator_answered(
        &mut self,
        session: SessionKey,
        token: u64,
        answer: Result<Vec<Value<'_>>, String>,
        out: &mut Vec<Action>,
    ) {
        let awaited = self.sessions.get(session).is_some_and(|state| {
            matches!(&state.phase, Phase::Authenticating(auth) if auth.checking == Some(token))
        });
        if !awaited {
            return;
        }
        let Phase::Authenticating(auth) = &self.sessions[session].phase else {
            return;
        };
        let (method, claimed) = (auth.method, auth.hello.authid.clone());
        let answer = match answer {
            Ok(values) => values,
            Err(error) => {
                let unavailable = [
                    uri::NO_SUCH_PROCEDURE,
                    uri::TIMEOUT,
                    uri::CANCELED,
                    uri::NO_AVAILABLE_CALLEE,
                ];
                if unavailable.contains(&error.as_str()) {
                    tracing::warn!(method = method.name(), %error, "the dynamic authenticator did not answer");
                    return self.refuse_authentication(
                        session,
                        uri::AUTHENTICATION_FAILED,
                        "the authenticator is not available".into(),
                        out,
                    );
                }
                let cause = format!("the authenticator refused with {error}");
                return self.deny(session, method, &claimed, &cause, out);
            }
        };
        let principal = match principal_of_answer(&claimed, method, answer.first()) {
            Ok(principal) => principal,
            Err(problem) => {
                tracing::warn!(
                    method = method.name(),
                    "the dynamic authenticator's answer is unusable: {problem}"
                );
                return self.refuse_authentication(
                    session,
                    uri::AUTHENTICATION_FAILED,
                    "the authenticator's answer is unusable".into(),
                    out,
                );
            }
        };
        if method == AuthMethod::Ticket {
            // The ticket was the authenticator's to judge: it answered, so it is right.
            if let Phase::Authenticating(auth) = &mut self.sessions[session].phase {
                auth.principal = Some((principal.authid.into(), principal.role.into()));
            }
            return self.authenticated(session, true, out);
        }
        self.send_challenge(session, Some(principal), out);
    }

    /// The outcome of an offloaded [`SecretCheck`] (`Action::Check`) of `session`, under
    /// `token`. A session that went meanwhile, or a token that is not the one awaited, is
    /// ignored.
    pub fn handle_checked(
        &mut self,
        session: SessionKey,
        token: u64,
        right: bool,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        self.now = now;
        let awaited = self.sessions.get(session).is_some_and(|state| {
            matches!(&state.phase, Phase::Authenticating(auth) if auth.checking == Some(token))
        });
        if awaited {
            self.authenticated(session, right, out);
        }
        self.settle(out);
    }

    /// The answer was checked: WELCOME if it was right and names a principal, else ABORT.
    fn authenticated(&mut self, session: SessionKey, right: bool, out: &mut Vec<Action>) {
        let Phase::Authenticating(state) = &self.sessions[session].phase else {
            return;
        };
        let method = state.method;
        let Some((authid, authrole)) = state.principal.clone().filter(|_| right) else {
            let cause = match (&state.principal, right) {
                (None, _) => "no such principal, or no secret of this method",
                (Some(_), _) => "wrong secret",
            };
            let claimed = state.hello.authid.clone();
            return self.deny(session, method, &claimed, cause, out);
        };
        let mut authextra = None;
        if let Expect::Scram {
            auth_message,
            credential,
            ..
        } = &state.expect
        {
            let mut extra = Dict::with_capacity(1);
            let signature = scram::server_signature(&credential.server_key, auth_message);
            extra.insert("scram_server_signature", Value::from(signature));
            authextra = Some(extra);
        }
        let (realm, id, features) = (state.hello.realm, state.id, state.hello.features);
        let provider = state.provider;
        let Some(role) = self.role_of(session, realm, &authrole, out) else {
            return;
        };
        let identity = Identity {
            id,
            realm,
            authid,
            authrole,
            role: RoleId::of(role),
            authmethod: method.name(),
            authprovider: provider,
        };
        self.welcome(session, identity, features, authextra, out);
    }

    /// The role `authrole` in `realm`, or ABORT `wamp.error.no_such_role` when the realm defines
    /// roles and not this one.
    pub(super) fn role_of(
        &mut self,
        session: SessionKey,
        realm: RealmId,
        authrole: &str,
        out: &mut Vec<Action>,
    ) -> Option<Option<RoleId>> {
        match self.realms.get(realm).roles.find(authrole) {
            Ok(role) => Some(role),
            Err(()) => {
                let text = format!(
                    "role {authrole:?} is not defined in realm {:?}",
                    &*self.realms.get(realm).name
                );
                self.refuse_authentication(session, uri::NO_SUCH_ROLE, text, out);
                None
            }
        }
    }

    /// A failed authentication: the same ABORT whatever the cause, which only the log names.
    fn deny(
        &mut self,
        session: SessionKey,
        method: AuthMethod,
        authid: &str,
        cause: &str,
        out: &mut Vec<Action>,
    ) {
        self.stats.authentications_denied += 1;
        if let Some(suppressed) = self.logs.authentication_denied.allow(self.now) {
            let state = &self.sessions[session];
            tracing::info!(
                peer = %state.transport.peer,
                method = method.name(),
                authid,
                suppressed,
                "authentication denied: {cause}"
            );
        }
        self.abort_before_welcome(
            session,
            uri::AUTHENTICATION_DENIED,
            "authentication failed".into(),
            out,
        );
    }

    /// ABORT for a HELLO or AUTHENTICATE that cannot succeed, for a reason the client may learn
    /// (a missing field, an unsupported option, an undefined role).
    fn refuse_authentication(
        &mut self,
        session: SessionKey,
        reason: &'static str,
        text: String,
        out: &mut Vec<Action>,
    ) {
        self.stats.authentications_denied += 1;
        if let Some(suppressed) = self.logs.authentication_denied.allow(self.now) {
            let peer = &self.sessions[session].transport.peer;
            tracing::info!(%peer, reason, suppressed, "authentication refused: {text}");
        }
        self.abort_before_welcome(session, reason, text.into(), out);
    }

    /// ABORT, then Close, a session that is not established; its claimed id goes.
    pub(super) fn abort_before_welcome(
        &mut self,
        session: SessionKey,
        reason: &'static str,
        text: Cow<'static, str>,
        out: &mut Vec<Action>,
    ) {
        let serializer = self.sessions[session].serializer;
        self.stop_waiting(session);
        self.send(
            out,
            session,
            serializer,
            &outbox::abort(reason, text, serializer),
        );
        out.push(Action::Close {
            session,
            reason: CloseReason::Done,
        });
    }

    /// The session leaves `ExpectHello` or `Authenticating` for `Closing`: its deadline and its
    /// claimed session id no longer matter.
    pub(super) fn stop_waiting(&mut self, session: SessionKey) {
        let state = &mut self.sessions[session];
        match std::mem::replace(&mut state.phase, Phase::Closing) {
            Phase::ExpectHello { deadline } => self.timers.cancel(deadline),
            Phase::Authenticating(auth) => {
                self.timers.cancel(auth.deadline);
                self.sessions.release_id(auth.id);
            }
            other => state.phase = other,
        }
    }

    /// The authentication deadline of `session` passed.
    pub(super) fn authentication_timed_out(
        &mut self,
        session: SessionKey,
        timer: TimerId,
        out: &mut Vec<Action>,
    ) {
        let waiting = self.sessions.get(session).is_some_and(
            |state| matches!(&state.phase, Phase::Authenticating(auth) if auth.deadline == timer),
        );
        if !waiting {
            return;
        }
        self.stats.authentication_timeouts += 1;
        let text = format!(
            "no AUTHENTICATE within {} ms",
            self.config.authenticate_timeout_ms
        );
        self.refuse_authentication(session, uri::TIMEOUT, text, out);
    }
}

/// PBKDF2 rounds a dynamic authenticator may ask for a salted WAMP-CRA key.
const MAX_DYNAMIC_WAMPCRA_ITERATIONS: u32 = 100_000;

/// The principal a dynamic authenticator's answer describes, for a session that claimed
/// `claimed` with `method`.
fn principal_of_answer(
    claimed: &str,
    method: AuthMethod,
    answer: Option<&Value<'_>>,
) -> Result<Principal, String> {
    let dict = match answer {
        Some(Value::Str(role)) => {
            if method != AuthMethod::Ticket {
                return Err(format!("{} needs a dict with the secret", method.name()));
            }
            return Ok(Principal::new(claimed, role.as_ref()));
        }
        Some(Value::Dict(dict)) => dict,
        other => return Err(format!("a role or a dict, not {other:?}")),
    };
    let role = dict.get_str("role").ok_or("no role")?;
    let authid = dict.get_str("authid").unwrap_or(claimed);
    if authid.is_empty() {
        return Err("no authid".into());
    }
    let mut principal = Principal::new(authid, role);
    match method {
        AuthMethod::WampCra => {
            let secret = dict.get_str("secret").ok_or("no secret")?.to_string();
            principal.wampcra = Some(match dict.get_str("salt") {
                None => WampCraSecret::Plain(Secret(secret)),
                Some(salt) => {
                    let number = |key: &str, default: u32, most: u32| match dict.get(key) {
                        None => Ok(default),
                        Some(value) => value
                            .as_u64()
                            .and_then(|n| u32::try_from(n).ok())
                            .filter(|n| (1..=most).contains(n))
                            .ok_or_else(|| format!("{key} must be 1 ..= {most}")),
                    };
                    // The key is derived here, on the shard's thread: the bound keeps one
                    // answer from stalling it (PBKDF2 at 100,000 rounds: tens of ms).
                    let iterations = number(
                        "iterations",
                        wampcra::DEFAULT_ITERATIONS,
                        MAX_DYNAMIC_WAMPCRA_ITERATIONS,
                    )?;
                    let keylen = number("keylen", wampcra::DEFAULT_KEYLEN, 1024)?;
                    WampCraSecret::Salted {
                        salt: salt.to_string(),
                        iterations,
                        keylen,
                        key: Secret(wampcra::derive_key(&secret, salt, iterations, keylen)),
                    }
                }
            });
        }
        AuthMethod::Cryptosign => {
            let keys: Vec<&str> = match dict.get("pubkey") {
                Some(Value::Str(key)) => vec![key.as_ref()],
                Some(Value::List(keys)) => keys.iter().filter_map(Value::as_str).collect(),
                _ => return Err("no pubkey".into()),
            };
            for key in keys {
                principal
                    .cryptosign
                    .push(cryptosign::parse_public_key(key).map_err(|e| format!("pubkey: {e}"))?);
            }
        }
        AuthMethod::Ticket | AuthMethod::Scram | AuthMethod::Anonymous => {}
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip_and_scram_has_autobahns_alias() {
        for method in AuthMethod::ALL {
            assert_eq!(AuthMethod::from_name(method.name()), Some(method));
        }
        assert_eq!(AuthMethod::from_name("scram"), Some(AuthMethod::Scram));
        assert_eq!(AuthMethod::from_name("tls"), None);
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let mut principal = Principal::new("joe", "user");
        principal.ticket = Some(TicketSecret::Plain(Secret("hunter2".into())));
        principal.wampcra = Some(WampCraSecret::Plain(Secret("wampcra-secret".into())));
        let shown = format!("{principal:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("wampcra-secret"),
            "{shown}"
        );
    }

    #[test]
    fn authenticator_answers_are_read_and_bounded() {
        let answer = |entries: &[(&'static str, Value<'static>)]| {
            let mut dict = Dict::new();
            for (key, value) in entries {
                dict.insert(*key, value.clone());
            }
            Value::Dict(dict)
        };
        let role = Value::from("user".to_string());
        let plain = principal_of_answer("joe", AuthMethod::Ticket, Some(&role)).unwrap();
        assert_eq!(
            (plain.authid.as_str(), plain.role.as_str()),
            ("joe", "user")
        );
        assert!(principal_of_answer("joe", AuthMethod::WampCra, Some(&role)).is_err());
        let salted = answer(&[
            ("role", role.clone()),
            ("secret", Value::from("s".to_string())),
            ("salt", Value::from("pepper".to_string())),
            ("iterations", Value::UInt(10)),
        ]);
        let principal = principal_of_answer("joe", AuthMethod::WampCra, Some(&salted)).unwrap();
        assert!(matches!(
            principal.wampcra,
            Some(WampCraSecret::Salted {
                iterations: 10,
                keylen: 32,
                ..
            })
        ));
        let costly = answer(&[
            ("role", role.clone()),
            ("secret", Value::from("s".to_string())),
            ("salt", Value::from("pepper".to_string())),
            (
                "iterations",
                Value::UInt(u64::from(MAX_DYNAMIC_WAMPCRA_ITERATIONS) + 1),
            ),
        ]);
        assert!(principal_of_answer("joe", AuthMethod::WampCra, Some(&costly)).is_err());
        let keyless = answer(&[("role", role)]);
        assert!(principal_of_answer("joe", AuthMethod::Cryptosign, Some(&keyless)).is_err());
        assert!(principal_of_answer("joe", AuthMethod::Ticket, None).is_err());
    }

    #[test]
    fn challenge_strings_are_json() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
