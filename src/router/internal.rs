//! The router's internal callee (DESIGN.md "The router is a peer of itself"): CALLs to
//! procedures in the reserved `wamp.` namespace, which no client may register, are answered by
//! the router itself, in the caller's realm. They pass the admission step like any CALL.
//!
//! * Session meta API (digest §10): `wamp.session.count`, `list`, `get`, `kill`,
//!   `kill_by_authid`, `kill_by_authrole`, `kill_all`. Sessions live on their own shards, so
//!   each answer is a gather over every shard; a kill is carried out by the shard of each
//!   session it names.
//! * Registration and subscription meta API: `list`, `lookup`, `match`, `get`,
//!   `list_callees`/`count_callees` are answered from this shard's replica, which every shard
//!   holds whole (REGISTERED/SUBSCRIBED go out only once every replica has the entry);
//!   `list_subscribers`/`count_subscribers` gather each shard's own subscribers.
//! * Revocation: `wamp.registration.remove_callee` asks the callee's shard (the replica names
//!   it), `wamp.subscription.remove_subscriber` asks every shard; the shard of the session
//!   removes it as an UNREGISTER/UNSUBSCRIBE would, and tells it (request id 0) when it
//!   announced the feature. The owner's update is acked to the asking shard, whose RESULT
//!   waits for every shard to have applied it (as UNREGISTERED does), so a meta question or
//!   CALL right after the RESULT finds the callee or subscriber gone everywhere.
//! * Testaments (`testament.rs`) and event history (`history.rs`).
//!
//! Arguments are read by position or by keyword (Autobahn sends `reason` and `message` as
//! keywords); an unknown keyword or a surplus argument gets `wamp.error.invalid_argument`.
//! Any other `wamp.*` procedure gets `wamp.error.no_such_procedure`, as from a router without
//! it.

use std::borrow::Cow;

use super::admission::Admitted;
use super::cluster::{LeaveAnswer, Removed};
use super::dealer::MatchPolicy;
use super::gather::{KillTarget, Partial, Query, Render, Then};
use super::meta::registration_details;
use super::realm::RealmId;
use super::session::PeerFeatures;
use super::shard_msg::AckTo;
use super::testament;
use super::{uri, Action, CloseReason, Router, SessionKey, UriCheck};
use crate::wire::{self, code, Dict, Message, Payload, Value};

/// A meta procedure's arguments, each parameter found by position or by keyword.
pub(crate) struct Arguments<'a> {
    args: Vec<Value<'a>>,
    kwargs: Option<Dict<'a>>,
    params: &'static [&'static str],
}

impl<'a> Arguments<'a> {
    /// Reads the payload of a CALL of a procedure taking `params`.
    fn read(payload: &Payload<'a>, params: &'static [&'static str]) -> Result<Self, String> {
        let (args, kwargs) = wire::decode_payload_values(payload)
            .map_err(|error| format!("the arguments cannot be read: {error}"))?;
        if args.len() > params.len() {
            return Err(format!(
                "takes at most {} positional arguments ({}), got {}",
                params.len(),
                params.join(", "),
                args.len()
            ));
        }
        for (key, _) in kwargs.iter().flat_map(|kwargs| kwargs.iter()) {
            match params.iter().position(|param| *param == key) {
                None => {
                    return Err(format!(
                        "has no argument {key:?} (it takes {})",
                        params.join(", ")
                    ))
                }
                Some(index) if index < args.len() => {
                    return Err(format!("{key} is given both by position and by keyword"))
                }
                Some(_) => {}
            }
        }
        Ok(Arguments {
            args,
            kwargs,
            params,
        })
    }

    /// Parameter `index` (named `name`), by position or keyword; null counts as absent.
    pub(crate) fn get(&self, index: usize, name: &str) -> Option<&Value<'a>> {
        debug_assert_eq!(self.params.get(index), Some(&name));
        self.args
            .get(index)
            .or_else(|| self.kwargs.as_ref().and_then(|kwargs| kwargs.get(name)))
            .filter(|value| !matches!(value, Value::Null))
    }

    /// A required id (session, registration, subscription).
    fn id(&self, index: usize, name: &str) -> Result<u64, String> {
        match self.get(index, name) {
            None => Err(format!("{name} is required")),
            Some(value) => value
                .as_u64()
                .ok_or_else(|| format!("{name} must be an integer id, got {value:?}")),
        }
    }

    /// An optional string.
    pub(crate) fn string(&self, index: usize, name: &str) -> Result<Option<&str>, String> {
        match self.get(index, name) {
            None => Ok(None),
            Some(value) => value
                .as_str()
                .map(Some)
                .ok_or_else(|| format!("{name} must be a string, got {value:?}")),
        }
    }

    /// A required string.
    fn required_string(&self, index: usize, name: &str) -> Result<&str, String> {
        self.string(index, name)?
            .ok_or_else(|| format!("{name} is required"))
    }

    /// An optional list of strings (`filter_authroles`).
    fn strings(&self, index: usize, name: &str) -> Result<Option<Vec<Box<str>>>, String> {
        match self.get(index, name) {
            None => Ok(None),
            Some(Value::List(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(Box::from)
                        .ok_or_else(|| format!("{name} must list strings, got {item:?}"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(format!("{name} must be a list of strings, got {other:?}")),
        }
    }

    /// The `options` of `lookup`: its `match` policy (exact when absent).
    fn match_policy(&self, index: usize) -> Result<MatchPolicy, String> {
        match self.get(index, "options") {
            None => Ok(MatchPolicy::Exact),
            Some(Value::Dict(options)) => match options.get("match") {
                None | Some(Value::Null) => Ok(MatchPolicy::Exact),
                Some(value) => match value.as_str() {
                    Some(name @ ("exact" | "prefix" | "wildcard")) => {
                        Ok(MatchPolicy::parse(Some(name)))
                    }
                    _ => Err(format!(
                        "options.match must be \"exact\", \"prefix\" or \"wildcard\", got {value:?}"
                    )),
                },
            },
            Some(other) => Err(format!("options must be a dict, got {other:?}")),
        }
    }
}

/// What a revocation removes a session from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Revoked {
    Callee,
    Subscriber,
}

/// What is wrong with a meta CALL: the ERROR's URI and text.
type Refusal = (&'static str, String);

fn invalid(text: String) -> Refusal {
    (uri::INVALID_ARGUMENT, text)
}

/// Parameters of each procedure, in positional order.
fn params_of(procedure: &str) -> Option<&'static [&'static str]> {
    Some(match procedure {
        "wamp.session.count" | "wamp.session.list" => &["filter_authroles"],
        "wamp.session.get" => &["session_id"],
        "wamp.session.kill" => &["session_id", "reason", "message"],
        "wamp.session.kill_by_authid" => &["authid", "reason", "message"],
        "wamp.session.kill_by_authrole" => &["authrole", "reason", "message"],
        "wamp.session.kill_all" => &["reason", "message"],
        "wamp.session.add_testament" => testament::ADD_PARAMS,
        "wamp.session.flush_testaments" => testament::FLUSH_PARAMS,
        "wamp.registration.list" | "wamp.subscription.list" => &[],
        "wamp.registration.lookup" => &["procedure", "options"],
        "wamp.registration.match" => &["procedure"],
        "wamp.subscription.lookup" => &["topic", "options"],
        "wamp.subscription.match" => &["topic"],
        "wamp.registration.get"
        | "wamp.registration.list_callees"
        | "wamp.registration.count_callees" => &["registration_id"],
        "wamp.subscription.get"
        | "wamp.subscription.list_subscribers"
        | "wamp.subscription.count_subscribers" => &["subscription_id"],
        "wamp.registration.remove_callee" => &["registration_id", "callee_id", "reason"],
        "wamp.subscription.remove_subscriber" => &["subscription_id", "subscriber_id", "reason"],
        _ => return None,
    })
}

impl Router {
    pub(super) fn call_internal(
        &mut self,
        me: Admitted,
        request: u64,
        procedure: &str,
        payload: Payload<'_>,
        out: &mut Vec<Action>,
    ) {
        if procedure == "wamp.subscription.get_events" {
            return self.get_events(me, request, payload, out);
        }
        let Some(params) = params_of(procedure) else {
            let text = format!("no procedure {procedure:?} in this router");
            self.send_error(
                out,
                me.key,
                code::CALL,
                request,
                uri::NO_SUCH_PROCEDURE,
                text,
            );
            return;
        };
        let answered = Arguments::read(&payload, params)
            .map_err(|text| invalid(format!("{procedure} {text}")))
            .and_then(|arguments| self.meta_call(me, request, procedure, &arguments, out));
        if let Err((error, text)) = answered {
            self.send_error(out, me.key, code::CALL, request, error, text);
        }
    }

    /// Answers (or starts answering) one meta CALL with valid-looking arguments.
    fn meta_call(
        &mut self,
        me: Admitted,
        request: u64,
        procedure: &str,
        arguments: &Arguments<'_>,
        out: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        let realm_state = self.realms.get(me.realm);
        let realm = realm_state.name.clone();
        let then = |render| Then::CallResult {
            caller: me.key,
            session_id: me.id,
            request,
            render,
        };
        match procedure {
            "wamp.session.count" | "wamp.session.list" => {
                let authroles = arguments.strings(0, "filter_authroles").map_err(invalid)?;
                let list = procedure == "wamp.session.list";
                let render = if list { Render::Ids } else { Render::Count };
                let query = Query::Sessions {
                    realm,
                    authroles,
                    list,
                };
                self.gather(query, then(render), out);
            }
            "wamp.session.get" => {
                let session = arguments.id(0, "session_id").map_err(invalid)?;
                self.gather(
                    Query::Session { realm, session },
                    then(Render::Session),
                    out,
                );
            }
            "wamp.session.kill"
            | "wamp.session.kill_by_authid"
            | "wamp.session.kill_by_authrole"
            | "wamp.session.kill_all" => {
                let first = usize::from(procedure != "wamp.session.kill_all");
                let (target, render) = match procedure {
                    "wamp.session.kill" => {
                        let session = arguments.id(0, "session_id").map_err(invalid)?;
                        if session == me.id {
                            let text = "a session cannot kill itself (leave with GOODBYE)";
                            return Err((uri::NO_SUCH_SESSION, text.into()));
                        }
                        (KillTarget::Session(session), Render::Killed)
                    }
                    "wamp.session.kill_by_authid" => {
                        let authid = arguments.required_string(0, "authid").map_err(invalid)?;
                        (KillTarget::Authid(authid.into()), Render::Ids)
                    }
                    "wamp.session.kill_by_authrole" => {
                        let authrole = arguments.required_string(0, "authrole").map_err(invalid)?;
                        (KillTarget::Authrole(authrole.into()), Render::Count)
                    }
                    _ => (KillTarget::All, Render::Count),
                };
                let reason = match arguments.string(first, "reason").map_err(invalid)? {
                    None => uri::CLOSE_KILLED.into(),
                    Some(reason) => {
                        if reason.len() > self.config.max_uri_length
                            || !wire::validate_uri(
                                reason,
                                self.config.uri_check == UriCheck::Strict,
                                false,
                            )
                        {
                            let text = format!("reason must be a URI, got {reason:?}");
                            return Err((uri::INVALID_URI, text));
                        }
                        reason.into()
                    }
                };
                let message = arguments
                    .string(first + 1, "message")
                    .map_err(invalid)?
                    .map(Box::from);
                let query = Query::Kill {
                    realm,
                    target,
                    except: me.id,
                    reason,
                    message,
                };
                self.gather(query, then(render), out);
            }
            "wamp.session.add_testament" => self.add_testament(me, request, arguments, out),
            "wamp.session.flush_testaments" => self.flush_testaments(me, request, arguments, out),
            "wamp.registration.list" => {
                let mut lists = [Vec::new(), Vec::new(), Vec::new()];
                for registration in realm_state.registry.iter() {
                    lists[registration.matching as usize].push(registration.id);
                }
                let value = policy_lists(lists);
                self.call_result(out, me.key, request, Some(value));
            }
            "wamp.subscription.list" => {
                let mut lists = [Vec::new(), Vec::new(), Vec::new()];
                for subscription in realm_state.subscriptions.iter() {
                    lists[subscription.matching as usize].push(subscription.id);
                }
                let value = policy_lists(lists);
                self.call_result(out, me.key, request, Some(value));
            }
            "wamp.registration.lookup" => {
                let procedure = arguments.required_string(0, "procedure").map_err(invalid)?;
                let matching = arguments.match_policy(1).map_err(invalid)?;
                let found = realm_state.registry.lookup(procedure, matching);
                let value = found.map_or(Value::Null, |entry| Value::UInt(entry.id));
                self.call_result(out, me.key, request, Some(value));
            }
            "wamp.registration.match" => {
                let procedure = arguments.required_string(0, "procedure").map_err(invalid)?;
                let found = realm_state.registry.route(procedure);
                let value = found.map_or(Value::Null, |entry| Value::UInt(entry.id));
                self.call_result(out, me.key, request, Some(value));
            }
            "wamp.subscription.lookup" => {
                let topic = arguments.required_string(0, "topic").map_err(invalid)?;
                let matching = arguments.match_policy(1).map_err(invalid)?;
                let found = realm_state.subscriptions.lookup(topic, matching);
                let value = found.map_or(Value::Null, |entry| Value::UInt(entry.id));
                self.call_result(out, me.key, request, Some(value));
            }
            "wamp.subscription.match" => {
                let topic = arguments.required_string(0, "topic").map_err(invalid)?;
                let subscriptions = &realm_state.subscriptions;
                let mut ids: Vec<u64> = subscriptions
                    .exact(topic)
                    .map(|entry| entry.id)
                    .into_iter()
                    .collect();
                subscriptions.for_each_pattern_match(topic, |entry| ids.push(entry.id));
                let value = if ids.is_empty() {
                    Value::Null
                } else {
                    Value::List(ids.into_iter().map(Value::UInt).collect())
                };
                self.call_result(out, me.key, request, Some(value));
            }
            "wamp.registration.get"
            | "wamp.registration.list_callees"
            | "wamp.registration.count_callees" => {
                let id = arguments.id(0, "registration_id").map_err(invalid)?;
                let Some(entry) = realm_state.registry.get(id) else {
                    let text = format!("no registration {id} in this realm");
                    return Err((uri::NO_SUCH_REGISTRATION, text));
                };
                let value = match procedure {
                    "wamp.registration.get" => registration_details(
                        entry.id,
                        entry.created,
                        &entry.procedure,
                        entry.matching.name(),
                        Some(entry.invoke.name()),
                    ),
                    "wamp.registration.list_callees" => Value::List(
                        entry
                            .callees
                            .iter()
                            .map(|callee| Value::UInt(callee.session.session_id))
                            .collect(),
                    ),
                    _ => Value::UInt(entry.callees.len() as u64),
                };
                // The value borrows the table: encode it before anything else is touched.
                let serializer = self.sessions[me.key].serializer;
                let payload = wire::payload_from_args(serializer, &[value], None);
                self.send_payload_result(out, me.key, request, payload);
            }
            "wamp.subscription.get" => {
                let id = arguments.id(0, "subscription_id").map_err(invalid)?;
                let Some(entry) = realm_state.subscriptions.get(id) else {
                    let text = format!("no subscription {id} in this realm");
                    return Err((uri::NO_SUCH_SUBSCRIPTION, text));
                };
                let value = registration_details(
                    entry.id,
                    entry.created,
                    &entry.topic,
                    entry.matching.name(),
                    None,
                );
                let serializer = self.sessions[me.key].serializer;
                let payload = wire::payload_from_args(serializer, &[value], None);
                self.send_payload_result(out, me.key, request, payload);
            }
            "wamp.subscription.list_subscribers" | "wamp.subscription.count_subscribers" => {
                let subscription = arguments.id(0, "subscription_id").map_err(invalid)?;
                if realm_state.subscriptions.get(subscription).is_none() {
                    let text = format!("no subscription {subscription} in this realm");
                    return Err((uri::NO_SUCH_SUBSCRIPTION, text));
                }
                let render = if procedure == "wamp.subscription.count_subscribers" {
                    Render::Count
                } else {
                    Render::Ids
                };
                let query = Query::Subscribers {
                    realm,
                    subscription,
                };
                self.gather(query, then(render), out);
            }
            "wamp.registration.remove_callee" => {
                let registration = arguments.id(0, "registration_id").map_err(invalid)?;
                let callee = arguments.id(1, "callee_id").map_err(invalid)?;
                let reason = arguments.string(2, "reason").map_err(invalid)?;
                let Some(entry) = realm_state.registry.get(registration) else {
                    let text = format!("no registration {registration} in this realm");
                    return Err((uri::NO_SUCH_REGISTRATION, text));
                };
                let Some(found) = entry
                    .callees
                    .iter()
                    .find(|registrant| registrant.session.session_id == callee)
                else {
                    let text =
                        format!("session {callee} is not a callee of registration {registration}");
                    return Err((uri::NO_SUCH_REGISTRATION, text));
                };
                let shard = found.session.shard;
                let reason = reason.map(Box::from);
                let ack = self.start_revocation(me.key, me.id, request);
                let query = Query::RemoveCallee {
                    realm,
                    registration,
                    session: callee,
                    reason,
                    ack,
                };
                let then = Then::Revoked {
                    ticket: ack.ticket,
                    missing: uri::NO_SUCH_REGISTRATION,
                };
                self.ask(shard, query, then, out);
            }
            "wamp.subscription.remove_subscriber" => {
                let subscription = arguments.id(0, "subscription_id").map_err(invalid)?;
                let subscriber = arguments.id(1, "subscriber_id").map_err(invalid)?;
                let reason = arguments.string(2, "reason").map_err(invalid)?;
                if realm_state.subscriptions.get(subscription).is_none() {
                    let text = format!("no subscription {subscription} in this realm");
                    return Err((uri::NO_SUCH_SUBSCRIPTION, text));
                }
                let reason = reason.map(Box::from);
                let ack = self.start_revocation(me.key, me.id, request);
                let query = Query::RemoveSubscriber {
                    realm,
                    subscription,
                    session: subscriber,
                    reason,
                    ack,
                };
                let then = Then::Revoked {
                    ticket: ack.ticket,
                    missing: uri::NO_SUCH_SUBSCRIPTION,
                };
                self.gather(query, then, out);
            }
            _ => unreachable!("params_of lists the same procedures"),
        }
        Ok(())
    }

    /// RESULT for `caller`'s CALL `request` with `value` as its only argument (none without).
    pub(super) fn call_result(
        &mut self,
        out: &mut Vec<Action>,
        caller: SessionKey,
        request: u64,
        value: Option<Value<'_>>,
    ) {
        let serializer = self.sessions[caller].serializer;
        let payload = match value {
            Some(value) => wire::payload_from_args(serializer, &[value], None),
            None => wire::payload_from_args(serializer, &[], None),
        };
        self.send_payload_result(out, caller, request, payload);
    }

    fn send_payload_result(
        &mut self,
        out: &mut Vec<Action>,
        caller: SessionKey,
        request: u64,
        payload: Result<wire::OwnedPayload, wire::EncodeError>,
    ) {
        let serializer = self.sessions[caller].serializer;
        match payload {
            Ok(payload) => {
                let result = Message::Result {
                    request,
                    details: Dict::new(),
                    payload: payload.as_payload(),
                };
                self.send(out, caller, serializer, &result);
            }
            Err(error) => {
                let text = format!("the answer cannot be written for this session: {error}");
                self.send_error(
                    out,
                    caller,
                    code::CALL,
                    request,
                    uri::INVALID_ARGUMENT,
                    text,
                );
            }
        }
    }
}

/// `{exact: [ids], prefix: [ids], wildcard: [ids]}`, each list ascending.
fn policy_lists(lists: [Vec<u64>; 3]) -> Value<'static> {
    let mut dict = Dict::with_capacity(3);
    for (policy, mut ids) in [
        MatchPolicy::Exact,
        MatchPolicy::Prefix,
        MatchPolicy::Wildcard,
    ]
    .into_iter()
    .zip(lists)
    {
        ids.sort_unstable();
        dict.insert(
            policy.name(),
            Value::List(ids.into_iter().map(Value::UInt).collect()),
        );
    }
    Value::Dict(dict)
}

/// What the shard of a session carries out for a meta procedure asked anywhere.
impl Router {
    /// Closes the local established sessions of `realm` that `target` names (never `except`):
    /// GOODBYE with `reason` and `message`, then as if they left. Answers their ids.
    pub(super) fn kill_sessions(
        &mut self,
        realm: &str,
        target: &KillTarget,
        except: u64,
        reason: &str,
        message: &Option<Box<str>>,
        out: &mut Vec<Action>,
    ) -> Vec<u64> {
        let Some(realm) = self.realms.find(realm) else {
            return Vec::new();
        };
        let named = |identity: &super::session::Identity| match target {
            KillTarget::Session(id) => identity.id == *id,
            KillTarget::Authid(authid) => identity.authid == *authid,
            KillTarget::Authrole(authrole) => identity.authrole == *authrole,
            KillTarget::All => true,
        };
        let victims: Vec<(SessionKey, u64)> = match target {
            KillTarget::Session(id) => self.sessions.key_of(*id).into_iter().collect::<Vec<_>>(),
            _ => self
                .sessions
                .iter()
                .map(|(key, _)| key)
                .filter(|&key| !self.internal.is_internal(key))
                .collect(),
        }
        .into_iter()
        .filter_map(|key| {
            let identity = self.sessions[key].identity()?;
            (identity.realm == realm && identity.id != except && named(identity))
                .then_some((key, identity.id))
        })
        .collect();
        for &(key, id) in &victims {
            self.stats.sessions_killed += 1;
            tracing::info!(wamp_session = id, reason, "session killed by the meta API");
            let mut details = Dict::new();
            if let Some(message) = message {
                details.insert("message", Value::Str(Cow::Borrowed(message)));
            }
            let goodbye = Message::Goodbye {
                details,
                reason: Cow::Borrowed(reason),
            };
            let serializer = self.sessions[key].serializer;
            self.send(out, key, serializer, &goodbye);
            self.leave(key, true, out);
            out.push(Action::Close {
                session: key,
                reason: CloseReason::Done,
            });
        }
        victims.into_iter().map(|(_, id)| id).collect()
    }

    /// Removes local session `session` from registration or subscription `id` as its
    /// UNREGISTER/UNSUBSCRIBE would, telling it (request id 0) when it announced the
    /// revocation feature. False when it is no such callee or subscriber here.
    ///
    /// Answers how many were removed (0 or 1) and how many shards will report applying the
    /// owner's update to `ack` (the asking shard's op).
    pub(super) fn revoke(
        &mut self,
        what: Revoked,
        (realm, id, session): (&str, u64, u64),
        (reason, ack): (&Option<Box<str>>, AckTo),
        out: &mut Vec<Action>,
    ) -> Partial {
        let nothing = Partial::Revoked {
            removed: 0,
            acks: 0,
        };
        let Some((key, realm)) = self.local_member(realm, session) else {
            return nothing;
        };
        let state = &mut self.sessions[key];
        let held = match what {
            Revoked::Callee => state.registrations.remove(&id),
            Revoked::Subscriber => state.subscriptions.remove(&id),
        };
        if !held {
            return nothing;
        }
        self.stats.revocations += 1;
        let every_shard = self.cluster.shards as u64;
        let (feature, kind, acks) = match what {
            Revoked::Callee => {
                self.callee_removed(realm, id, key, session);
                self.send_unregister(key, session, realm, id, Some(ack), out);
                (PeerFeatures::CALLEE_REVOCATION, "registration", every_shard)
            }
            Revoked::Subscriber => {
                let answer = LeaveAnswer::To(ack);
                let removed = self.remove_local_subscriber(key, session, realm, id, answer, out);
                let acks = if removed == Some(Removed::Left) {
                    every_shard
                } else {
                    0
                };
                (PeerFeatures::SUBSCRIBER_REVOCATION, "subscription", acks)
            }
        };
        let revoked = Partial::Revoked { removed: 1, acks };
        let state = &self.sessions[key];
        if !state.features.has(feature) {
            return revoked;
        }
        let serializer = state.serializer;
        let mut details = Dict::with_capacity(2);
        details.insert(kind, id);
        if let Some(reason) = reason {
            details.insert("reason", Value::Str(Cow::Borrowed(reason)));
        }
        let details = Some(details);
        let notice = match what {
            Revoked::Callee => Message::Unregistered {
                request: 0,
                details,
            },
            Revoked::Subscriber => Message::Unsubscribed {
                request: 0,
                details,
            },
        };
        self.send(out, key, serializer, &notice);
        revoked
    }

    /// The key and realm of `session` when it is established here, in realm `realm`.
    fn local_member(&self, realm: &str, session: u64) -> Option<(SessionKey, RealmId)> {
        let realm = self.realms.find(realm)?;
        let key = self.sessions.key_of(session)?;
        let identity = self.sessions[key].identity()?;
        (identity.realm == realm).then_some((key, realm))
    }
}
