//! The `[admin]` table: where the operator's HTTP listener (metrics, health, the live status
//! page) listens, its optional TLS, and the bearer token that guards it. Without the table
//! there is no admin listener at all; with it, `bind` defaults to 127.0.0.1:8090 so metrics are
//! never exposed to other machines by accident.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use super::{listener_tls, ConfigError, ListenerTls};
use crate::router::Secret;

/// Where the admin listener listens when `[admin]` names no `bind`.
pub const DEFAULT_ADMIN_BIND: &str = "127.0.0.1:8090";

/// Shortest bearer token accepted: a guessable token guards nothing.
const MIN_TOKEN_BYTES: usize = 16;

/// The admin listener, validated.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub bind: SocketAddr,
    pub tls: Option<ListenerTls>,
    /// When set, every request but `/healthz` and `/readyz` must carry
    /// `Authorization: Bearer <token>`.
    pub token: Option<Secret<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    bind: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    token: Option<String>,
    /// A file holding the token (its first line), so the config can be world-readable.
    token_file: Option<String>,
}

impl RawAdmin {
    pub(super) fn validate(self, base: &Path) -> Result<AdminConfig, ConfigError> {
        let text = self.bind.as_deref().unwrap_or(DEFAULT_ADMIN_BIND);
        let bind: SocketAddr = text.parse().map_err(|_| {
            ConfigError(format!(
                "admin.bind: {text:?} is not an IP:PORT socket address (e.g. \"{DEFAULT_ADMIN_BIND}\")"
            ))
        })?;
        if bind.port() == 0 {
            return Err(ConfigError(
                "admin.bind: port 0 is not allowed; name a port".into(),
            ));
        }
        let tls = listener_tls(
            "admin",
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            base,
        )?;
        let token = match (self.token, self.token_file) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "admin.token_file: give token or token_file, not both".into(),
                ))
            }
            (Some(token), None) => Some(check_token("admin.token", token)?),
            (None, Some(file)) => {
                let path = base.join(&file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError(format!(
                        "admin.token_file: cannot read {}: {e}",
                        path.display()
                    ))
                })?;
                let first = text.lines().next().unwrap_or("").trim().to_string();
                Some(check_token("admin.token_file", first)?)
            }
        };
        Ok(AdminConfig { bind, tls, token })
    }
}

fn check_token(key: &str, token: String) -> Result<Secret<String>, ConfigError> {
    if token.len() < MIN_TOKEN_BYTES {
        return Err(ConfigError(format!(
            "{key}: the token is shorter than {MIN_TOKEN_BYTES} bytes (make one with `openssl rand -hex 24`)"
        )));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError(format!(
            "{key}: the token must be printable ASCII without spaces (it travels in an HTTP header)"
        )));
    }
    Ok(Secret(token))
}

impl AdminConfig {
    /// What an operator should hear before exposing the admin listener.
    pub(super) fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.bind.ip().is_loopback() {
            if self.token.is_none() {
                warnings.push(format!(
                    "admin listener {} is on a non-loopback address without a token: anyone who can reach it reads the router's metrics and status; set admin.token_file",
                    self.bind
                ));
            } else if self.tls.is_none() {
                warnings.push(format!(
                    "admin listener {} is on a non-loopback address without TLS: its token travels in the clear; give it tls_cert and tls_key",
                    self.bind
                ));
            }
        }
        warnings
    }

    /// The URL of its status page.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/", self.bind)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = r#"
[[listener]]
kind = "rawsocket"
bind = "127.0.0.1:18081"
[[realm]]
name = "realm1"
"#;

    fn load(admin: &str) -> Result<Config, String> {
        Config::from_toml_str(&format!("{BASE}\n[admin]\n{admin}")).map_err(|e| e.0)
    }

    #[test]
    fn no_table_means_no_admin_listener_and_an_empty_table_means_loopback() {
        assert!(Config::from_toml_str(BASE).unwrap().admin.is_none());
        let admin = load("").unwrap().admin.unwrap();
        assert_eq!(admin.bind.to_string(), "127.0.0.1:8090");
        assert!(admin.tls.is_none() && admin.token.is_none());
        assert_eq!(admin.url(), "http://127.0.0.1:8090/");
    }

    #[test]
    fn bad_values_are_named() {
        let e = load("bind = \"localhost:1\"").unwrap_err();
        assert!(e.contains("admin.bind"), "{e}");
        let e = load("bind = \"127.0.0.1:0\"").unwrap_err();
        assert!(e.contains("admin.bind: port 0"), "{e}");
        let e = load("token = \"short\"").unwrap_err();
        assert!(e.contains("admin.token: the token is shorter"), "{e}");
        let e = load("token = \"has a space in it, sixteen+\"").unwrap_err();
        assert!(e.contains("printable ASCII"), "{e}");
        let e = load("tls_cert = \"c.pem\"").unwrap_err();
        assert!(e.contains("admin.tls_key: missing"), "{e}");
        let e = load("token_file = \"/nonexistent/token\"").unwrap_err();
        assert!(e.contains("admin.token_file: cannot read"), "{e}");
        let e = load("colour = \"blue\"").unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let e = Config::from_toml_str(&format!("{BASE}\n[admin]\nbind = \"127.0.0.1:18081\""))
            .unwrap_err()
            .0;
        assert!(
            e.contains("admin.bind: 127.0.0.1:18081 is already used"),
            "{e}"
        );
    }

    #[test]
    fn a_token_file_is_read_and_never_shown() {
        let dir = std::env::temp_dir().join(format!("wampring-admin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "0123456789abcdef0123\n").unwrap();
        let admin = load(&format!("token_file = {:?}", file.to_str().unwrap()))
            .unwrap()
            .admin
            .unwrap();
        assert_eq!(admin.token.as_ref().unwrap().0, "0123456789abcdef0123");
        assert!(!format!("{admin:?}").contains("0123456789abcdef"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn exposure_is_warned_about() {
        let open = load("bind = \"0.0.0.0:8090\"").unwrap();
        let warnings = open.warnings();
        assert!(
            warnings.iter().any(|w| w.contains("without a token")),
            "{warnings:?}"
        );
        let tokened = load("bind = \"0.0.0.0:8090\"\ntoken = \"0123456789abcdef0123\"").unwrap();
        let warnings = tokened.warnings();
        assert!(
            warnings.iter().any(|w| w.contains("without TLS")),
            "{warnings:?}"
        );
        assert!(load("").unwrap().warnings().is_empty());
    }
}
