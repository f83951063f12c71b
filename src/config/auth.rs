//! The authentication and authorization part of the config file: which methods a listener
//! accepts (`authmethods`, `anonymous_role` on `[[listener]]`), a realm's roles and their
//! permissions (`[[realm.role]]`, `[[realm.role.permission]]`) and its principals
//! (`[[realm.principal]]`), read and checked into the router's types (`router::ListenerAuth`,
//! `RoleConfig`, `Principal`). Every problem names its key: an unknown role, a malformed key or
//! hash, a secret given twice, a listener method no principal can use.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;

use super::ConfigError;
use crate::credentials::{cryptosign, scram, ticket};
use crate::router::{
    AuthMethod, AuthenticatorConfig, ListenerAuth, MatchPolicy, PermissionConfig, Perms, Principal,
    RealmConfig, RoleConfig, Secret, TicketSecret, WampCraSecret,
};

fn error(key: String, problem: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("{key}: {problem}"))
}

/// `authmethods` and `anonymous_role` of `listener[index]`.
pub(super) fn listener_auth(
    index: usize,
    methods: Option<Vec<String>>,
    anonymous_role: Option<String>,
) -> Result<ListenerAuth, ConfigError> {
    let mut auth = ListenerAuth::default();
    if let Some(names) = methods {
        let key = format!("listener[{index}].authmethods");
        auth.methods.clear();
        for name in names {
            let method = AuthMethod::from_name(&name).ok_or_else(|| {
                let known: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.name()).collect();
                error(
                    key.clone(),
                    format!("unknown method {name:?} (known: {known:?})"),
                )
            })?;
            if auth.methods.contains(&method) {
                return Err(error(key, format!("{name:?} is listed twice")));
            }
            auth.methods.push(method);
        }
        if auth.methods.is_empty() {
            return Err(error(key, "at least one method is required"));
        }
    }
    if let Some(role) = anonymous_role {
        if role.is_empty() {
            return Err(error(
                format!("listener[{index}].anonymous_role"),
                "must not be empty",
            ));
        }
        auth.anonymous_role = role;
    }
    Ok(auth)
}

/// One `[[realm.role]]` table.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRole {
    name: String,
    #[serde(default, rename = "permission")]
    permissions: Vec<RawPermission>,
    authorizer: Option<String>,
}

/// A realm's `[realm.authenticator]` table.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuthenticator {
    procedure: String,
    realm: Option<String>,
    methods: Vec<String>,
}

/// The dynamic authenticator of `realm[index]` (named `realm`): the procedure, the realm it is
/// registered in (this one by default, which must be configured) and the methods it decides.
pub(super) fn authenticator(
    index: usize,
    realm: &str,
    raw: Option<RawAuthenticator>,
    configured: &[String],
) -> Result<Option<AuthenticatorConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let key = |field: &str| format!("realm[{index}].authenticator.{field}");
    if raw.procedure.is_empty() || raw.procedure.starts_with("wamp.") {
        return Err(error(
            key("procedure"),
            "must name a procedure of the application",
        ));
    }
    let host = raw.realm.unwrap_or_else(|| realm.to_string());
    if !configured.contains(&host) {
        return Err(error(
            key("realm"),
            format!("{host:?} is not a configured [[realm]]"),
        ));
    }
    let mut methods = Vec::new();
    for name in &raw.methods {
        match AuthMethod::from_name(name) {
            Some(method @ (AuthMethod::Ticket | AuthMethod::WampCra | AuthMethod::Cryptosign)) => {
                if !methods.contains(&method) {
                    methods.push(method);
                }
            }
            _ => {
                return Err(error(
                    key("methods"),
                    format!("{name:?}: a dynamic authenticator decides \"ticket\", \"wampcra\" or \"cryptosign\""),
                ))
            }
        }
    }
    if methods.is_empty() {
        return Err(error(key("methods"), "at least one method is required"));
    }
    Ok(Some(AuthenticatorConfig {
        procedure: raw.procedure,
        realm: host,
        methods,
    }))
}

/// One `[[realm.role.permission]]` table.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawPermission {
    uri: String,
    #[serde(default, rename = "match")]
    matching: Option<String>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    disclose_caller: bool,
    #[serde(default)]
    disclose_publisher: bool,
}

/// One `[[realm.principal]]` table.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrincipal {
    authid: String,
    role: String,
    ticket: Option<String>,
    ticket_hash: Option<String>,
    wampcra_secret: Option<String>,
    wampcra: Option<RawSaltedWampCra>,
    #[serde(default)]
    cryptosign: Vec<String>,
    scram: Option<RawScram>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawSaltedWampCra {
    salt: String,
    iterations: u32,
    keylen: u32,
    key: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawScram {
    kdf: String,
    iterations: u32,
    memory: Option<u32>,
    salt: String,
    stored_key: String,
    server_key: String,
}

/// The roles of `realm[index]`.
pub(super) fn roles(index: usize, raw: Vec<RawRole>) -> Result<Vec<RoleConfig>, ConfigError> {
    let mut names = HashSet::new();
    let mut roles = Vec::with_capacity(raw.len());
    for (role_index, role) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("realm[{index}].role[{role_index}].{field}");
        if role.name.is_empty() {
            return Err(error(key("name"), "must not be empty"));
        }
        if !names.insert(role.name.clone()) {
            return Err(error(
                key("name"),
                format!("role {:?} is defined twice", role.name),
            ));
        }
        let mut seen = HashSet::new();
        let mut permissions = Vec::with_capacity(role.permissions.len());
        for (n, permission) in role.permissions.into_iter().enumerate() {
            let key =
                |field: &str| format!("realm[{index}].role[{role_index}].permission[{n}].{field}");
            let matching = match permission.matching.as_deref() {
                None | Some("exact") => MatchPolicy::Exact,
                Some("prefix") => MatchPolicy::Prefix,
                Some("wildcard") => MatchPolicy::Wildcard,
                Some(other) => {
                    return Err(error(
                        key("match"),
                        format!("{other:?} is not one of \"exact\", \"prefix\", \"wildcard\""),
                    ))
                }
            };
            if matching == MatchPolicy::Exact && permission.uri.is_empty() {
                return Err(error(
                    key("uri"),
                    "an exact permission needs a URI (\"\" with match = \"prefix\" covers every URI)",
                ));
            }
            if !seen.insert((permission.uri.clone(), matching)) {
                return Err(error(
                    key("uri"),
                    format!(
                        "{:?} with match {:?} is given twice in this role",
                        permission.uri,
                        matching.name()
                    ),
                ));
            }
            let mut allow = Perms::NONE;
            for action in &permission.allow {
                let perm = Perms::of_action(action).ok_or_else(|| {
                    error(
                        key("allow"),
                        format!("{action:?} is not one of \"call\", \"register\", \"publish\", \"subscribe\""),
                    )
                })?;
                allow = allow.with(perm);
            }
            if permission.disclose_caller {
                allow = allow.with(Perms::DISCLOSE_CALLER);
            }
            if permission.disclose_publisher {
                allow = allow.with(Perms::DISCLOSE_PUBLISHER);
            }
            permissions.push(PermissionConfig {
                uri: permission.uri,
                matching,
                allow,
            });
        }
        if let Some(procedure) = &role.authorizer {
            if procedure.is_empty() || procedure.starts_with("wamp.") {
                return Err(error(
                    key("authorizer"),
                    "must name a procedure of the application",
                ));
            }
            if !permissions.is_empty() {
                return Err(error(
                    key("authorizer"),
                    "a role with an authorizer has no permissions (the authorizer decides)",
                ));
            }
        }
        roles.push(RoleConfig {
            name: role.name,
            permissions,
            authorizer: role.authorizer,
        });
    }
    Ok(roles)
}

/// The principals of `realm[index]`, whose roles must be among `roles` when it defines any.
pub(super) fn principals(
    index: usize,
    raw: Vec<RawPrincipal>,
    roles: &[RoleConfig],
) -> Result<Vec<Principal>, ConfigError> {
    let mut authids = HashSet::new();
    let mut pubkeys = HashSet::new();
    let mut principals = Vec::with_capacity(raw.len());
    for (n, raw) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("realm[{index}].principal[{n}].{field}");
        if raw.authid.is_empty() {
            return Err(error(key("authid"), "must not be empty"));
        }
        if !authids.insert(raw.authid.clone()) {
            return Err(error(
                key("authid"),
                format!("{:?} is defined twice", raw.authid),
            ));
        }
        if !roles.is_empty() && !roles.iter().any(|role| role.name == raw.role) {
            let defined: Vec<&str> = roles.iter().map(|role| role.name.as_str()).collect();
            return Err(error(
                key("role"),
                format!(
                    "unknown role {:?} (this realm defines {defined:?})",
                    raw.role
                ),
            ));
        }
        let mut principal = Principal::new(raw.authid, raw.role);
        principal.ticket = match (raw.ticket, raw.ticket_hash) {
            (Some(_), Some(_)) => {
                return Err(error(
                    key("ticket_hash"),
                    "give ticket or ticket_hash, not both",
                ))
            }
            (Some(plain), None) if plain.is_empty() => {
                return Err(error(key("ticket"), "must not be empty"))
            }
            (Some(plain), None) => Some(TicketSecret::Plain(Secret(plain))),
            (None, Some(hash)) => {
                ticket::is_valid_hash(&hash).map_err(|problem| {
                    error(
                        key("ticket_hash"),
                        format!("not an argon2id PHC string ({problem}); make one with `wampring auth ticket`"),
                    )
                })?;
                Some(TicketSecret::Argon2id(Arc::from(hash)))
            }
            (None, None) => None,
        };
        principal.wampcra = match (raw.wampcra_secret, raw.wampcra) {
            (Some(_), Some(_)) => {
                return Err(error(
                    key("wampcra"),
                    "give wampcra_secret or wampcra, not both",
                ))
            }
            (Some(secret), None) if secret.is_empty() => {
                return Err(error(key("wampcra_secret"), "must not be empty"))
            }
            (Some(secret), None) => Some(WampCraSecret::Plain(Secret(secret))),
            (None, Some(salted)) => {
                if salted.salt.is_empty() || salted.key.is_empty() {
                    return Err(error(key("wampcra"), "salt and key must not be empty"));
                }
                if salted.iterations == 0 || salted.keylen == 0 || salted.keylen > 1024 {
                    return Err(error(
                        key("wampcra"),
                        "iterations must be at least 1 and keylen 1 ..= 1024",
                    ));
                }
                Some(WampCraSecret::Salted {
                    salt: salted.salt,
                    iterations: salted.iterations,
                    keylen: salted.keylen,
                    key: Secret(salted.key),
                })
            }
            (None, None) => None,
        };
        for (k, text) in raw.cryptosign.iter().enumerate() {
            let public = cryptosign::parse_public_key(text).map_err(|problem| {
                error(
                    format!("realm[{index}].principal[{n}].cryptosign[{k}]"),
                    format!("{problem} (want 64 hex digits of an Ed25519 public key; make a pair with `wampring auth cryptosign`)"),
                )
            })?;
            if !pubkeys.insert(public.to_bytes()) {
                return Err(error(
                    format!("realm[{index}].principal[{n}].cryptosign[{k}]"),
                    "this public key already belongs to a principal of this realm",
                ));
            }
            principal.cryptosign.push(public);
        }
        if let Some(raw) = raw.scram {
            principal.scram = Some(scram_credential(&key("scram"), raw)?);
        }
        principals.push(principal);
    }
    Ok(principals)
}

fn hex_bytes(key: &str, field: &str, text: &str) -> Result<Vec<u8>, ConfigError> {
    hex::decode(text).map_err(|e| error(format!("{key}.{field}"), format!("not hex: {e}")))
}

fn hex_key(key: &str, field: &str, text: &str) -> Result<[u8; 32], ConfigError> {
    hex_bytes(key, field, text)?
        .try_into()
        .map_err(|_| error(format!("{key}.{field}"), "must be 32 bytes (64 hex digits)"))
}

fn scram_credential(key: &str, raw: RawScram) -> Result<scram::Credential, ConfigError> {
    let kdf = match (raw.kdf.as_str(), raw.memory) {
        ("argon2id-13" | "argon2id13", Some(memory)) if memory >= 8 => scram::Kdf::Argon2id13 {
            iterations: raw.iterations,
            memory,
        },
        ("argon2id-13" | "argon2id13", _) => {
            return Err(error(
                format!("{key}.memory"),
                "argon2id-13 needs memory (KiB, at least 8)",
            ))
        }
        ("pbkdf2", None) => scram::Kdf::Pbkdf2 {
            iterations: raw.iterations,
        },
        ("pbkdf2", Some(_)) => {
            return Err(error(format!("{key}.memory"), "pbkdf2 takes no memory"))
        }
        (other, _) => {
            return Err(error(
                format!("{key}.kdf"),
                format!("{other:?} is not \"argon2id-13\" or \"pbkdf2\""),
            ))
        }
    };
    if raw.iterations == 0 {
        return Err(error(format!("{key}.iterations"), "must be at least 1"));
    }
    let salt = hex_bytes(key, "salt", &raw.salt)?;
    if salt.len() < 8 {
        return Err(error(format!("{key}.salt"), "must be at least 8 bytes"));
    }
    Ok(scram::Credential {
        kdf,
        salt,
        stored_key: hex_key(key, "stored_key", &raw.stored_key)?,
        server_key: hex_key(key, "server_key", &raw.server_key)?,
    })
}

/// Every method a listener accepts besides anonymous must be usable by some principal of some
/// realm: otherwise no session can ever use it, which is a mistake worth stopping for.
pub(super) fn check_methods_have_principals(
    listeners: &[(usize, &ListenerAuth)],
    realms: &[RealmConfig],
) -> Result<(), ConfigError> {
    for &(index, auth) in listeners {
        for &method in &auth.methods {
            if method == AuthMethod::Anonymous {
                continue;
            }
            let usable = realms.iter().any(|realm| {
                realm
                    .principals
                    .iter()
                    .any(|principal| principal.has(method))
                    || realm
                        .authenticator
                        .as_ref()
                        .is_some_and(|authenticator| authenticator.methods.contains(&method))
            });
            if !usable {
                return Err(error(
                    format!("listener[{index}].authmethods"),
                    format!(
                        "{:?} is accepted, but no [[realm.principal]] has a secret for it and no realm's authenticator decides it",
                        method.name()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// TOML text of a string value (quoted and escaped).
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// What `wampring auth ticket` prints: a principal's `ticket_hash` line (argon2id).
pub fn ticket_hash_line(ticket: &str) -> String {
    format!("ticket_hash = {}", toml_string(&ticket::hash(ticket)))
}

/// What `wampring auth wampcra` prints: a principal's salted `wampcra` table. A salt is made
/// when none is given.
pub fn wampcra_line(secret: &str, salt: Option<&str>, iterations: u32, keylen: u32) -> String {
    let salt = match salt {
        Some(salt) => salt.to_string(),
        None => {
            let mut bytes = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
            crate::credentials::base64_encode(&bytes)
        }
    };
    let key = crate::credentials::wampcra::derive_key(secret, &salt, iterations, keylen);
    format!(
        "wampcra = {{ salt = {}, iterations = {iterations}, keylen = {keylen}, key = {} }}",
        toml_string(&salt),
        toml_string(&key)
    )
}

/// What `wampring auth scram` prints: a principal's `scram` table (StoredKey and ServerKey,
/// never the password). A 16-byte salt is made when none is given.
pub fn scram_line(
    password: &str,
    kdf: scram::Kdf,
    salt: Option<Vec<u8>>,
) -> Result<String, String> {
    let salt = salt.unwrap_or_else(|| {
        let mut bytes = vec![0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        bytes
    });
    let credential = scram::derive(password, &salt, kdf)?;
    let memory = match kdf {
        scram::Kdf::Argon2id13 { memory, .. } => format!(", memory = {memory}"),
        scram::Kdf::Pbkdf2 { .. } => String::new(),
    };
    Ok(format!(
        "scram = {{ kdf = {}, iterations = {}{memory}, salt = {}, stored_key = {}, server_key = {} }}",
        toml_string(kdf.name()),
        kdf.iterations(),
        toml_string(&hex::encode(&credential.salt)),
        toml_string(&hex::encode(credential.stored_key)),
        toml_string(&hex::encode(credential.server_key)),
    ))
}

/// What `wampring auth cryptosign` prints: a new key pair, as (the private key for the
/// client, in hex; the principal's `cryptosign` line with the public key).
pub fn cryptosign_lines() -> (String, String) {
    let (private, public) = cryptosign::generate();
    (private, format!("cryptosign = [{}]", toml_string(&public)))
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use crate::router::{AuthMethod, Perms, TicketSecret, WampCraSecret};

    const LISTENER: &str = "[[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:9000\"\n";

    fn error_of(text: &str) -> String {
        match Config::from_toml_str(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(ConfigError(e)) => e,
        }
    }

    fn realm_with(extra: &str) -> String {
        format!(
            "{LISTENER}authmethods = [\"ticket\", \"anonymous\"]\n[[realm]]\nname = \"r\"\n\
             [[realm.role]]\nname = \"user\"\n\
             [[realm.role.permission]]\nuri = \"com.\"\nmatch = \"prefix\"\nallow = [\"call\", \"subscribe\"]\n\
             disclose_caller = true\n\
             [[realm.principal]]\nauthid = \"joe\"\nrole = \"user\"\nticket = \"t\"\n{extra}"
        )
    }

    #[test]
    fn listener_methods_roles_and_principals_are_read() {
        let (_, cryptosign) = crate::credentials::cryptosign::generate();
        let scram = super::scram_line(
            "pw",
            crate::credentials::scram::Kdf::Pbkdf2 { iterations: 10 },
            None,
        )
        .unwrap();
        let config = Config::from_toml_str(&realm_with(&format!(
            "[[realm.principal]]\nauthid = \"ann\"\nrole = \"user\"\n{}\n\
             wampcra_secret = \"s\"\ncryptosign = [\"{cryptosign}\"]\n{scram}\n",
            super::ticket_hash_line("ann-ticket")
        )))
        .unwrap();
        let auth = &config.listeners[0].auth;
        assert_eq!(
            auth.methods,
            vec![AuthMethod::Ticket, AuthMethod::Anonymous]
        );
        assert_eq!(auth.anonymous_role, "anonymous");
        assert_eq!(config.router.listeners, vec![auth.clone()]);
        let realm = &config.router.realms[0];
        assert_eq!(
            realm.roles[0].permissions[0].allow,
            Perms::CALL
                .with(Perms::SUBSCRIBE)
                .with(Perms::DISCLOSE_CALLER)
        );
        let ann = &realm.principals[1];
        assert!(
            matches!(&ann.ticket, Some(TicketSecret::Argon2id(hash)) if crate::credentials::ticket::verify("ann-ticket", hash))
        );
        assert!(matches!(ann.wampcra, Some(WampCraSecret::Plain(_))));
        assert_eq!(ann.cryptosign.len(), 1);
        assert!(ann.scram.is_some());
    }

    #[test]
    fn the_default_listener_is_anonymous_only() {
        let config = Config::default_config();
        for listener in &config.listeners {
            assert_eq!(listener.auth.methods, vec![AuthMethod::Anonymous]);
        }
        assert!(config.warnings().is_empty());
        let open = Config::from_toml_str(
            "[[listener]]\nkind = \"rawsocket\"\nbind = \"0.0.0.0:9000\"\n[[realm]]\nname = \"r\"\n",
        )
        .unwrap();
        let warnings = open.warnings();
        assert!(
            warnings.len() == 1 && warnings[0].contains("anonymous"),
            "{warnings:?}"
        );
    }

    #[test]
    fn bad_principals_roles_and_methods_are_named() {
        for (extra, key, problem) in [
            ("[[realm.principal]]\nauthid = \"x\"\nrole = \"nope\"\n", "realm[0].principal[1].role", "unknown role"),
            ("[[realm.principal]]\nauthid = \"joe\"\nrole = \"user\"\n", "realm[0].principal[1].authid", "twice"),
            ("[[realm.principal]]\nauthid = \"x\"\nrole = \"user\"\ncryptosign = [\"abcd\"]\n", "realm[0].principal[1].cryptosign[0]", "bytes, not 32"),
            ("[[realm.principal]]\nauthid = \"x\"\nrole = \"user\"\nticket_hash = \"plain\"\n", "realm[0].principal[1].ticket_hash", "argon2id"),
            ("[[realm.principal]]\nauthid = \"x\"\nrole = \"user\"\nticket = \"a\"\nticket_hash = \"b\"\n", "realm[0].principal[1].ticket_hash", "not both"),
            ("[[realm.principal]]\nauthid = \"x\"\nrole = \"user\"\nscram = { kdf = \"md5\", iterations = 1, salt = \"00\", stored_key = \"00\", server_key = \"00\" }\n", "realm[0].principal[1].scram.kdf", "md5"),
            ("[[realm.role]]\nname = \"user\"\n", "realm[0].role[1].name", "twice"),
            ("[[realm.role]]\nname = \"x\"\n[[realm.role.permission]]\nuri = \"a\"\nallow = [\"fly\"]\n", "realm[0].role[1].permission[0].allow", "fly"),
        ] {
            let e = error_of(&realm_with(extra));
            assert!(e.starts_with(key) && e.contains(problem), "{key}: {e}");
        }
        let e = error_of(&format!(
            "{LISTENER}authmethods = [\"wampcra\"]\n[[realm]]\nname = \"r\"\n"
        ));
        assert!(
            e.starts_with("listener[0].authmethods") && e.contains("no [[realm.principal]]"),
            "{e}"
        );
        let e = error_of(&format!(
            "{LISTENER}authmethods = [\"kerberos\"]\n[[realm]]\nname = \"r\"\n"
        ));
        assert!(
            e.starts_with("listener[0].authmethods") && e.contains("kerberos"),
            "{e}"
        );
        let e = error_of(&format!(
            "{LISTENER}authmethods = []\n[[realm]]\nname = \"r\"\n"
        ));
        assert!(e.contains("at least one"), "{e}");
    }

    #[test]
    fn a_realm_may_have_an_authenticator_and_roles_an_authorizer() {
        let config = Config::from_toml_str(&format!(
            "{LISTENER}authmethods = [\"ticket\"]\n[[realm]]\nname = \"r\"\n\
             [realm.authenticator]\nprocedure = \"com.auth.authenticate\"\nrealm = \"auth\"\nmethods = [\"ticket\", \"cryptosign\"]\n\
             [[realm.role]]\nname = \"user\"\nauthorizer = \"com.auth.authorize\"\n\
             [[realm]]\nname = \"auth\"\n"
        ))
        .unwrap();
        let realm = &config.router.realms[0];
        let authenticator = realm.authenticator.as_ref().unwrap();
        assert_eq!(authenticator.realm, "auth");
        assert_eq!(
            authenticator.methods,
            vec![AuthMethod::Ticket, AuthMethod::Cryptosign]
        );
        assert_eq!(
            realm.roles[0].authorizer.as_deref(),
            Some("com.auth.authorize")
        );
        for (extra, key) in [
            ("[realm.authenticator]\nprocedure = \"a.b\"\nrealm = \"nowhere\"\nmethods = [\"ticket\"]\n", "realm[0].authenticator.realm"),
            ("[realm.authenticator]\nprocedure = \"a.b\"\nmethods = [\"wamp-scram\"]\n", "realm[0].authenticator.methods"),
            ("[realm.authenticator]\nprocedure = \"wamp.x\"\nmethods = [\"ticket\"]\n", "realm[0].authenticator.procedure"),
            ("[[realm.role]]\nname = \"x\"\nauthorizer = \"a.b\"\n[[realm.role.permission]]\nuri = \"a\"\n", "realm[0].role[1].authorizer"),
        ] {
            let e = error_of(&realm_with(extra));
            assert!(e.starts_with(key), "{key}: {e}");
        }
    }

    #[test]
    fn the_printed_lines_are_valid_principal_config() {
        let (private, line) = super::cryptosign_lines();
        assert_eq!(private.len(), 64);
        for secret_line in [
            super::ticket_hash_line("t"),
            super::wampcra_line("s", None, 10, 16),
            super::scram_line(
                "p",
                crate::credentials::scram::Kdf::Pbkdf2 { iterations: 10 },
                None,
            )
            .unwrap(),
            line,
        ] {
            let text = format!(
                "{LISTENER}[[realm]]\nname = \"r\"\n[[realm.principal]]\nauthid = \"a\"\nrole = \"r\"\n{secret_line}\n"
            );
            Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{secret_line}: {e:?}"));
        }
    }
}
