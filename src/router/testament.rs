//! Testaments (digest §9.3, `testament_meta_api`): events a session leaves with the router, to
//! be published when the session goes away, whatever the way (GOODBYE, transport lost, killed,
//! closed as a slow consumer, router shutdown). `wamp.session.add_testament(topic, args,
//! kwargs, publish_options={}, scope="destroyed")` keeps one and answers the publication id it
//! will carry; `wamp.session.flush_testaments(scope="destroyed")` drops a scope's and answers
//! how many. They live on the session (bounded by `max_testaments_per_session`, each at most
//! one message), and its shard publishes them in `leave`, before the session's meta events:
//! the "detached" scope first, then "destroyed" (this router has no session resumption, so a
//! session is detached and destroyed at once), each in insertion order. The publisher is never
//! disclosed; `publish_options` may carry the black/white lists and `retain`.

use super::admission::Admitted;
use super::authz::Perms;
use super::internal::Arguments;
use super::meta::RouterEvent;
use super::pubsub::ReceiverFilters;
use super::shard_msg::OwnedFilters;
use super::{uri, Action, Router};
use crate::serializer::Serializer;
use crate::wire::{self, code, OwnedPayload, Value};

/// One testament, ready to publish.
pub(crate) struct Testament {
    topic: Box<str>,
    publication: u64,
    payload: OwnedPayload,
    filters: Option<OwnedFilters>,
    retain: bool,
}

/// A session's testaments, by scope, oldest first.
#[derive(Default)]
pub(crate) struct Testaments {
    detached: Vec<Testament>,
    destroyed: Vec<Testament>,
}

impl Testaments {
    pub(crate) fn len(&self) -> usize {
        self.detached.len() + self.destroyed.len()
    }

    fn scope_mut(&mut self, scope: Scope) -> &mut Vec<Testament> {
        match scope {
            Scope::Detached => &mut self.detached,
            Scope::Destroyed => &mut self.destroyed,
        }
    }

    /// Every testament in publishing order.
    fn into_published_order(self) -> impl Iterator<Item = Testament> {
        self.detached.into_iter().chain(self.destroyed)
    }
}

#[derive(Copy, Clone)]
enum Scope {
    Detached,
    Destroyed,
}

/// The `scope` argument: "destroyed" when absent.
fn scope_of(value: Option<&Value<'_>>) -> Result<Scope, String> {
    match value {
        None => Ok(Scope::Destroyed),
        Some(value) => match value.as_str() {
            Some("destroyed") => Ok(Scope::Destroyed),
            Some("detached") => Ok(Scope::Detached),
            _ => Err(format!(
                "scope must be \"destroyed\" or \"detached\", got {value:?}"
            )),
        },
    }
}

/// `publish_options` keys a testament may carry; `acknowledge` and `exclude_me` are accepted
/// and ignored, as by Crossbar.io (nobody waits for the PUBLISHED, and the publisher is gone).
const PUBLISH_OPTIONS: [&str; 9] = [
    "exclude",
    "exclude_authid",
    "exclude_authrole",
    "eligible",
    "eligible_authid",
    "eligible_authrole",
    "retain",
    "acknowledge",
    "exclude_me",
];

pub(super) const ADD_PARAMS: &[&str] = &["topic", "args", "kwargs", "publish_options", "scope"];
pub(super) const FLUSH_PARAMS: &[&str] = &["scope"];

impl Router {
    /// `wamp.session.add_testament`.
    pub(super) fn add_testament(
        &mut self,
        me: Admitted,
        request: u64,
        arguments: &Arguments<'_>,
        out: &mut Vec<Action>,
    ) {
        let testament = match self.read_testament(arguments) {
            Ok(testament) => testament,
            Err((error, text)) => {
                self.send_error(out, me.key, code::CALL, request, error, text);
                return;
            }
        };
        let scope = match scope_of(arguments.get(4, "scope")) {
            Ok(scope) => scope,
            Err(text) => {
                let error = uri::TESTAMENT_ERROR;
                self.send_error(out, me.key, code::CALL, request, error, text);
                return;
            }
        };
        // The testament is published on the session's behalf: its role must allow that now.
        let role = self.sessions[me.key]
            .identity()
            .and_then(|identity| identity.role.restricted());
        if let Some(role) = role {
            let perms = self
                .realms
                .get_mut(me.realm)
                .roles
                .decide(role, &testament.topic);
            if !perms.has(Perms::PUBLISH) {
                self.stats.authorizations_denied += 1;
                let text = format!("this session's role may not publish {:?}", testament.topic);
                self.send_error(out, me.key, code::CALL, request, uri::NOT_AUTHORIZED, text);
                return;
            }
        }
        let limit = self.config.max_testaments_per_session;
        let testaments = &mut self.sessions[me.key].testaments;
        if testaments.len() >= limit {
            let text = format!(
                "this session already has {limit} testaments (limits.max_testaments_per_session)"
            );
            let error = uri::TOO_MANY_TESTAMENTS;
            self.send_error(out, me.key, code::CALL, request, error, text);
            return;
        }
        let publication = testament.publication;
        testaments.scope_mut(scope).push(testament);
        self.call_result(out, me.key, request, Some(Value::UInt(publication)));
    }

    /// `wamp.session.flush_testaments`: answers how many were dropped.
    pub(super) fn flush_testaments(
        &mut self,
        me: Admitted,
        request: u64,
        arguments: &Arguments<'_>,
        out: &mut Vec<Action>,
    ) {
        let scope = match scope_of(arguments.get(0, "scope")) {
            Ok(scope) => scope,
            Err(text) => {
                let error = uri::TESTAMENT_ERROR;
                self.send_error(out, me.key, code::CALL, request, error, text);
                return;
            }
        };
        let flushed = std::mem::take(self.sessions[me.key].testaments.scope_mut(scope)).len();
        self.call_result(out, me.key, request, Some(Value::UInt(flushed as u64)));
    }

    /// The testament `add_testament`'s arguments describe, or the ERROR's URI and text.
    fn read_testament(
        &mut self,
        arguments: &Arguments<'_>,
    ) -> Result<Testament, (&'static str, String)> {
        let invalid = |text: String| (uri::INVALID_ARGUMENT, text);
        let topic = arguments
            .string(0, "topic")
            .map_err(invalid)?
            .ok_or_else(|| {
                invalid("add_testament(topic, args, kwargs, ...) needs a topic".into())
            })?;
        if topic.len() > self.config.max_uri_length || !self.uri_is_valid(topic) {
            return Err((uri::INVALID_URI, format!("invalid topic URI {topic:?}")));
        }
        if uri::is_reserved(topic) {
            let text = format!("{topic:?}: the wamp. namespace is reserved for the router");
            return Err((uri::INVALID_URI, text));
        }
        let args: &[Value<'_>] = match arguments.get(1, "args") {
            None => &[],
            Some(Value::List(args)) => args,
            Some(other) => return Err(invalid(format!("args must be a list, got {other:?}"))),
        };
        let kwargs = match arguments.get(2, "kwargs") {
            None => None,
            Some(Value::Dict(kwargs)) => Some(kwargs),
            Some(other) => return Err(invalid(format!("kwargs must be a dict, got {other:?}"))),
        };
        let (filters, retain) = match arguments.get(3, "publish_options") {
            None => (None, false),
            Some(Value::Dict(options)) => {
                if let Some((key, _)) = options
                    .iter()
                    .find(|(key, _)| !PUBLISH_OPTIONS.contains(key))
                {
                    return Err(invalid(format!(
                        "publish_options has no option {key:?} (it takes {})",
                        PUBLISH_OPTIONS.join(", ")
                    )));
                }
                for (key, value) in options.iter() {
                    let items_are = |wanted: fn(&Value<'_>) -> bool, what: &str| match value {
                        Value::List(items) if items.iter().all(wanted) => Ok(()),
                        _ => Err(invalid(format!(
                            "publish_options.{key} must be a list of {what}, got {value:?}"
                        ))),
                    };
                    match key {
                        "exclude" | "eligible" => {
                            items_are(|item| item.as_u64().is_some(), "session ids")?
                        }
                        "exclude_authid" | "eligible_authid" | "exclude_authrole"
                        | "eligible_authrole" => {
                            items_are(|item| item.as_str().is_some(), "strings")?
                        }
                        _ => {}
                    }
                }
                let filters = ReceiverFilters::from_options(options);
                let retain = match options.get("retain") {
                    None => false,
                    Some(value) => value.as_bool().ok_or_else(|| {
                        invalid(format!("retain must be a boolean, got {value:?}"))
                    })?,
                };
                (
                    filters.is_active().then(|| filters.to_owned_filters()),
                    retain,
                )
            }
            Some(other) => {
                return Err(invalid(format!(
                    "publish_options must be a dict, got {other:?}"
                )))
            }
        };
        // MessagePack carries every value; JSON subscribers get it transcoded once.
        let payload = wire::payload_from_args(Serializer::MsgPack, args, kwargs)
            .map_err(|error| invalid(format!("the testament cannot be kept: {error}")))?;
        Ok(Testament {
            topic: topic.into(),
            publication: self.random_ids.next_id(),
            payload,
            filters,
            retain,
        })
    }

    /// A leaving session's testaments, published into its realm in order.
    pub(super) fn publish_testaments(
        &mut self,
        realm: std::sync::Arc<str>,
        testaments: Testaments,
        out: &mut Vec<Action>,
    ) {
        for testament in testaments.into_published_order() {
            self.stats.testaments_published += 1;
            let event = RouterEvent {
                topic: testament.topic,
                publication: testament.publication,
                payload: testament.payload,
                filters: testament.filters,
                retain: testament.retain,
            };
            self.publish_from_router(realm.clone(), event, out);
        }
    }
}
