//! Reloading the configuration (SIGHUP): where the running configuration came from
//! ([`ConfigSource`]: the file and the command-line overrides, read again the same way), and
//! what a newly read configuration may change in a running process ([`plan_reload`]).
//!
//! A process cannot re-bind its sockets, re-shard itself or resize its channels without a
//! restart, so the settings behind them — `cores`, `placement`, `log_level`, `[runtime]`, the
//! `[[listener]]` sockets (kind, bind, TLS files, transport limits, slow-consumer policy, and
//! `limits.max_outbound_bytes`/`outbound_soft_bytes`/`slow_consumer`, which are folded into
//! them), the `[admin]` listener and each realm's `[[realm.history]]` (its subscription ids are derived at start) —
//! are compared, named when they differ, and kept as they run. Everything else applies:
//! realms, roles, principals, authenticators, the router's limits and rules, each listener's
//! authentication methods (when its socket is unchanged), and the connection limits the
//! runtime checks per new connection (`handshake_timeout_ms`, `max_connections_per_shard`).

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{Config, ConfigError, ListenerConfig, ShardPlacement};
use crate::router::RouterConfig;

/// Where the running configuration came from: read again on reload, with the same overrides.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    /// `--config FILE`; `None`: the embedded default, which has nothing to re-read.
    pub path: Option<PathBuf>,
    /// `--cores`, already checked against its range.
    pub cores: Option<usize>,
    /// `--placement`.
    pub placement: Option<ShardPlacement>,
}

impl ConfigSource {
    /// Reads and validates the file again and applies the command-line overrides. `Ok(None)`:
    /// there is no file (the embedded default runs).
    pub fn load(&self) -> Result<Option<Config>, ConfigError> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let mut config = Config::load(path)?;
        self.apply_overrides(&mut config);
        Ok(Some(config))
    }

    /// The command line wins over the file, at start and at every reload alike.
    pub fn apply_overrides(&self, config: &mut Config) {
        if let Some(cores) = self.cores {
            config.cores = Some(cores);
        }
        if let Some(placement) = self.placement {
            config.placement = placement;
        }
    }
}

/// What a reload does with a newly read configuration.
#[derive(Debug)]
pub struct ReloadPlan {
    /// The configuration to run from now on: the new one, with every setting that needs a
    /// restart kept as it runs.
    pub config: Config,
    /// The settings that differ but need a restart (kept as they run), one line each.
    pub needs_restart: Vec<String>,
    /// What changes, one line each; empty when nothing does.
    pub changes: Vec<String>,
}

/// Compares `new` with the `running` configuration: see the module text.
pub fn plan_reload(running: &Config, mut new: Config) -> ReloadPlan {
    let mut restart = Vec::new();
    if new.cores != running.cores {
        restart.push(format!(
            "cores ({} -> {})",
            cores_text(running.cores),
            cores_text(new.cores)
        ));
        new.cores = running.cores;
    }
    if new.placement != running.placement {
        restart.push(format!(
            "placement ({} -> {})",
            running.placement.name(),
            new.placement.name()
        ));
        new.placement = running.placement;
    }
    if new.log_level != running.log_level {
        restart.push("log_level".to_string());
        new.log_level = running.log_level.clone();
    }
    let (old_rt, new_rt) = (&running.runtime, &new.runtime);
    for (name, differs) in [
        (
            "spin_before_park_us",
            old_rt.spin_before_park_us != new_rt.spin_before_park_us,
        ),
        (
            "shard_channel_capacity",
            old_rt.shard_channel_capacity != new_rt.shard_channel_capacity,
        ),
        (
            "shard_backlog_limit",
            old_rt.shard_backlog_limit != new_rt.shard_backlog_limit,
        ),
    ] {
        if differs {
            restart.push(format!("runtime.{name}"));
        }
    }
    new.runtime = running.runtime.clone();

    let (old_limits, new_limits) = (&running.limits, &new.limits);
    let outbound_differs = old_limits.max_outbound_bytes != new_limits.max_outbound_bytes
        || old_limits.slow_consumer != new_limits.slow_consumer;
    if old_limits.max_outbound_bytes != new_limits.max_outbound_bytes {
        restart.push("limits.max_outbound_bytes".to_string());
    }
    if old_limits.slow_consumer != new_limits.slow_consumer {
        restart.push("limits.slow_consumer / limits.outbound_soft_bytes".to_string());
    }
    new.limits.max_outbound_bytes = running.limits.max_outbound_bytes;
    new.limits.slow_consumer = running.limits.slow_consumer;

    let listener_problems = compare_listeners(&running.listeners, &new.listeners, outbound_differs);
    if listener_problems.is_empty() {
        // Same sockets: each listener's authentication methods (held by the router) apply.
        let mut listeners = running.listeners.clone();
        for (running, new) in listeners.iter_mut().zip(&new.listeners) {
            running.auth = new.auth.clone();
        }
        new.listeners = listeners;
    } else {
        restart.extend(listener_problems);
        new.listeners = running.listeners.clone();
        new.router.listeners = running.router.listeners.clone();
    }

    let admin = |config: &Config| {
        config.admin.as_ref().map(|admin| {
            let tls = admin
                .tls
                .as_ref()
                .map(|tls| (tls.cert.clone(), tls.key.clone()));
            (admin.bind, tls, admin.token.clone())
        })
    };
    if admin(running) != admin(&new) {
        restart.push("[admin] (the admin listener)".to_string());
    }
    new.admin = running.admin.clone();
    // Measured for the admin listener's metrics: it follows the listener, which stays.
    new.router.measure_call_latency = running.router.measure_call_latency;

    for realm in &mut new.router.realms {
        let running_history = running
            .router
            .realms
            .iter()
            .find(|old| old.name == realm.name)
            .map_or(&[][..], |old| &old.history[..]);
        if realm.history != running_history {
            restart.push(format!("realm {:?}: [[realm.history]]", realm.name));
            realm.history = running_history.to_vec();
        }
    }

    let changes = describe_changes(running, &new);
    ReloadPlan {
        config: new,
        needs_restart: restart,
        changes,
    }
}

fn cores_text(cores: Option<usize>) -> String {
    cores.map_or_else(|| "all".to_string(), |cores| cores.to_string())
}

/// The listener settings that differ, one line per listener (empty: the same sockets). The
/// outbound bounds are left out when `limits` already named them.
fn compare_listeners(
    running: &[ListenerConfig],
    new: &[ListenerConfig],
    outbound_named: bool,
) -> Vec<String> {
    if running.len() != new.len() {
        return vec![format!(
            "[[listener]] ({} listeners -> {})",
            running.len(),
            new.len()
        )];
    }
    let mut lines = Vec::new();
    for (index, (old, new)) in running.iter().zip(new).enumerate() {
        let (a, b) = (&old.transport, &new.transport);
        let tls = |listener: &ListenerConfig| {
            listener
                .tls
                .as_ref()
                .map(|tls| (tls.cert.clone(), tls.key.clone()))
        };
        let mut fields = Vec::new();
        for (name, differs) in [
            ("kind", old.kind != new.kind),
            ("bind", old.bind != new.bind),
            ("tls_cert/tls_key", tls(old) != tls(new)),
            ("path", a.ws_path != b.ws_path),
            ("serializers", a.serializers != b.serializers),
            ("max_message_size", a.max_message_size != b.max_message_size),
            ("max_fragments", a.max_ws_fragments != b.max_ws_fragments),
            (
                "slow_consumer/outbound_soft_bytes",
                !outbound_named
                    && (old.slow_consumer != new.slow_consumer
                        || a.max_outbound_bytes != b.max_outbound_bytes),
            ),
        ] {
            if differs {
                fields.push(name);
            }
        }
        if !fields.is_empty() {
            lines.push(format!(
                "listener[{index}] ({}): {}",
                old.url(),
                fields.join(", ")
            ));
        }
    }
    lines
}

/// A setting the router holds: its name in the file, and its value as text.
type RouterField = (&'static str, fn(&RouterConfig) -> String);

/// What the reload changes, for the log: realms added and removed, roles and principals
/// replaced (per realm, with their new counts), limits and rules that changed.
fn describe_changes(running: &Config, new: &Config) -> Vec<String> {
    let (old, next): (&RouterConfig, &RouterConfig) = (&running.router, &new.router);
    let mut changes = Vec::new();
    let names = |config: &RouterConfig, other: &RouterConfig| -> Vec<String> {
        config
            .realms
            .iter()
            .filter(|realm| !other.realms.iter().any(|o| o.name == realm.name))
            .map(|realm| format!("{:?}", realm.name))
            .collect()
    };
    let added = names(next, old);
    if !added.is_empty() {
        changes.push(format!("realms added: {}", added.join(", ")));
    }
    let removed = names(old, next);
    if !removed.is_empty() {
        changes.push(format!(
            "realms removed (no new sessions; open ones stay): {}",
            removed.join(", ")
        ));
    }
    for realm in &next.realms {
        let Some(before) = old.realms.iter().find(|o| o.name == realm.name) else {
            continue;
        };
        let mut what = String::new();
        if before.roles != realm.roles {
            let _ = write!(
                what,
                "roles {} -> {}",
                before.roles.len(),
                realm.roles.len()
            );
        }
        if before.principals != realm.principals {
            if !what.is_empty() {
                what.push_str(", ");
            }
            let _ = write!(
                what,
                "principals {} -> {}",
                before.principals.len(),
                realm.principals.len()
            );
        }
        if before.authenticator != realm.authenticator {
            if !what.is_empty() {
                what.push_str(", ");
            }
            what.push_str("authenticator");
        }
        if (before.disclose_caller, before.disclose_publisher)
            != (realm.disclose_caller, realm.disclose_publisher)
        {
            if !what.is_empty() {
                what.push_str(", ");
            }
            what.push_str("disclosure");
        }
        if !what.is_empty() {
            changes.push(format!("realm {:?}: {what}", realm.name));
        }
    }

    let mut limits = Vec::new();
    let mut compare = |name: &str, before: String, after: String| {
        if before != after {
            limits.push(format!("{name} {before} -> {after}"));
        }
    };
    compare(
        "limits.handshake_timeout_ms",
        running.limits.handshake_timeout_ms.to_string(),
        new.limits.handshake_timeout_ms.to_string(),
    );
    compare(
        "limits.max_connections_per_shard",
        running.limits.max_connections_per_shard.to_string(),
        new.limits.max_connections_per_shard.to_string(),
    );
    compare(
        "limits.longpoll_poll_timeout_ms",
        running.limits.longpoll_poll_timeout_ms.to_string(),
        new.limits.longpoll_poll_timeout_ms.to_string(),
    );
    compare(
        "limits.longpoll_session_timeout_ms",
        running.limits.longpoll_session_timeout_ms.to_string(),
        new.limits.longpoll_session_timeout_ms.to_string(),
    );
    let router_fields: [RouterField; 13] = [
        ("limits.hello_timeout_ms", |c| {
            c.hello_timeout_ms.to_string()
        }),
        ("limits.authenticate_timeout_ms", |c| {
            c.authenticate_timeout_ms.to_string()
        }),
        ("limits.max_pending_calls_per_session", |c| {
            c.max_pending_calls_per_session.to_string()
        }),
        ("limits.max_uri_length", |c| c.max_uri_length.to_string()),
        ("limits.max_options_entries", |c| {
            c.max_options_entries.to_string()
        }),
        ("limits.max_registrations_per_session", |c| {
            c.max_registrations_per_session.to_string()
        }),
        ("limits.max_subscriptions_per_session", |c| {
            c.max_subscriptions_per_session.to_string()
        }),
        ("limits.max_testaments_per_session", |c| {
            c.max_testaments_per_session.to_string()
        }),
        ("limits.max_retained_bytes_per_realm", |c| {
            c.max_retained_bytes_per_realm.to_string()
        }),
        ("router.auto_create_realms", |c| {
            c.auto_create_realms.to_string()
        }),
        ("router.max_auto_created_realms", |c| {
            c.max_auto_created_realms.to_string()
        }),
        ("router.uri_check", |c| {
            format!("{:?}", c.uri_check).to_lowercase()
        }),
        ("router.strict_request_ids", |c| {
            c.strict_request_ids.to_string()
        }),
    ];
    for (name, value) in router_fields {
        compare(name, value(old), value(next));
    }
    if !limits.is_empty() {
        changes.push(limits.join(", "));
    }
    if old.listeners != next.listeners {
        changes.push("listener authentication methods".to_string());
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[[listener]]\nkind = \"websocket\"\nbind = \"127.0.0.1:9000\"\n\
        [[realm]]\nname = \"r\"\n[[realm.history]]\nuri = \"com.h\"\n";

    fn load(text: &str) -> Config {
        Config::from_toml_str(text).unwrap()
    }

    #[test]
    fn an_unchanged_file_changes_nothing() {
        let plan = plan_reload(&load(BASE), load(BASE));
        assert!(plan.needs_restart.is_empty(), "{:?}", plan.needs_restart);
        assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    }

    #[test]
    fn what_applies_is_described_and_taken() {
        let next = format!(
            "{BASE}[[realm.role]]\nname = \"user\"\n[[realm]]\nname = \"two\"\n\
             [limits]\nmax_uri_length = 2048\nhandshake_timeout_ms = 5000\n"
        );
        let plan = plan_reload(&load(BASE), load(&next));
        assert!(plan.needs_restart.is_empty(), "{:?}", plan.needs_restart);
        let text = plan.changes.join("; ");
        assert!(text.contains("realms added: \"two\""), "{text}");
        assert!(text.contains("realm \"r\": roles 0 -> 1"), "{text}");
        assert!(
            text.contains("limits.max_uri_length 1024 -> 2048"),
            "{text}"
        );
        assert!(
            text.contains("limits.handshake_timeout_ms 10000 -> 5000"),
            "{text}"
        );
        assert_eq!(plan.config.router.realms.len(), 2);
        assert_eq!(plan.config.router.max_uri_length, 2048);
        assert_eq!(plan.config.limits.handshake_timeout_ms, 5000);

        let plan = plan_reload(&load(&next), load(BASE));
        let text = plan.changes.join("; ");
        assert!(text.contains("realms removed"), "{text}");
        assert!(text.contains("\"two\""), "{text}");
    }

    #[test]
    fn what_needs_a_restart_is_named_and_kept() {
        let running = load(BASE);
        let next = "cores = 2\nplacement = \"round-robin\"\nlog_level = \"debug\"\n\
            [[listener]]\nkind = \"websocket\"\nbind = \"127.0.0.1:9001\"\nmax_message_size = 4096\n\
            [[realm]]\nname = \"r\"\n[[realm.history]]\nuri = \"com.other\"\n\
            [[realm]]\nname = \"new\"\n[[realm.history]]\nuri = \"com.h\"\n\
            [runtime]\nshard_channel_capacity = 1024\n[limits]\nmax_outbound_bytes = 1048576\n\
            [admin]\nbind = \"127.0.0.1:9090\"\n";
        let plan = plan_reload(&running, load(next));
        let text = plan.needs_restart.join("\n");
        for wanted in [
            "cores (all -> 2)",
            "placement (kernel -> round-robin)",
            "log_level",
            "runtime.shard_channel_capacity",
            "limits.max_outbound_bytes",
            "listener[0] (ws://127.0.0.1:9000/ws): bind, max_message_size",
            "[admin]",
            "realm \"r\": [[realm.history]]",
            "realm \"new\": [[realm.history]]",
        ] {
            assert!(text.contains(wanted), "{wanted:?} not in:\n{text}");
        }
        // The outbound bound is named once, under limits, not again per listener.
        assert!(
            !text.contains("slow_consumer/outbound_soft_bytes"),
            "{text}"
        );
        let config = &plan.config;
        assert_eq!(
            (config.cores, config.placement),
            (None, ShardPlacement::Kernel)
        );
        assert_eq!(config.log_level, None);
        assert_eq!(config.runtime, running.runtime);
        assert_eq!(
            config.limits.max_outbound_bytes,
            running.limits.max_outbound_bytes
        );
        assert_eq!(config.listeners[0].bind, running.listeners[0].bind);
        assert_eq!(
            config.router.realms[0].history,
            running.router.realms[0].history
        );
        assert!(config.router.realms[1].history.is_empty());
        assert!(config.admin.is_none() && !config.router.measure_call_latency);
        // The new realm itself applies.
        assert_eq!(config.router.realms[1].name, "new");
    }

    #[test]
    fn listener_authentication_applies_when_its_socket_is_unchanged() {
        let running = load(BASE);
        let next = BASE.replace(
            "bind = \"127.0.0.1:9000\"\n",
            "bind = \"127.0.0.1:9000\"\nanonymous_role = \"guest\"\n",
        );
        let plan = plan_reload(&running, load(&next));
        assert!(plan.needs_restart.is_empty(), "{:?}", plan.needs_restart);
        assert_eq!(plan.config.router.listeners[0].anonymous_role, "guest");
        assert_eq!(plan.config.listeners[0].auth.anonymous_role, "guest");
        assert!(plan
            .changes
            .iter()
            .any(|c| c.contains("listener authentication")));

        // A listener that changed keeps its socket and its authentication as they run.
        let moved = next.replace("9000", "9002");
        let plan = plan_reload(&running, load(&moved));
        assert_eq!(plan.needs_restart.len(), 1, "{:?}", plan.needs_restart);
        assert_eq!(plan.config.router.listeners[0].anonymous_role, "anonymous");
    }

    #[test]
    fn the_source_applies_the_command_line_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wampring.toml");
        std::fs::write(&path, format!("cores = 4\n{BASE}")).unwrap();
        let source = ConfigSource {
            path: Some(path.clone()),
            cores: Some(1),
            placement: Some(ShardPlacement::RoundRobin),
        };
        let config = source.load().unwrap().unwrap();
        assert_eq!(config.cores, Some(1));
        assert_eq!(config.placement, ShardPlacement::RoundRobin);
        std::fs::write(&path, "[[listener]]\nkind = \"websocket\"\n").unwrap();
        let error = source.load().unwrap_err().0;
        assert!(error.starts_with(&path.display().to_string()), "{error}");
        assert!(ConfigSource::default().load().unwrap().is_none());
    }
}
