//! The router's internal callee (DESIGN.md "The router is a peer of itself"): CALLs to
//! procedures in the reserved `wamp.` namespace, which no client may register, are answered by
//! the router itself. Answers that need every shard's tables go through the gather primitive,
//! so they are the same whichever shard the caller lives on.
//!
//! Implemented: `wamp.session.count([filter_authroles])` (digest §10) and
//! `wamp.subscription.get_events` (event history, `history.rs`). Any other `wamp.*`
//! procedure gets `wamp.error.no_such_procedure`, as from a router without it.

use super::admission::Admitted;
use super::gather::{Query, Then};
use super::{uri, Action, Router};
use crate::wire::{self, code, Payload, Value};

impl Router {
    pub(super) fn call_internal(
        &mut self,
        me: Admitted,
        request: u64,
        procedure: &str,
        payload: Payload<'_>,
        out: &mut Vec<Action>,
    ) {
        match procedure {
            "wamp.session.count" => {
                let authroles = match authroles_filter(&payload) {
                    Ok(authroles) => authroles,
                    Err(text) => {
                        self.send_error(
                            out,
                            me.key,
                            code::CALL,
                            request,
                            uri::INVALID_ARGUMENT,
                            text,
                        );
                        return;
                    }
                };
                let query = Query::SessionCount {
                    realm: self.realms.get(me.realm).name.clone(),
                    authroles,
                };
                let then = Then::CallResult {
                    caller: me.key,
                    session_id: me.id,
                    request,
                };
                self.gather(query, then, out);
            }
            "wamp.subscription.get_events" => self.get_events(me, request, payload, out),
            _ => {
                let text = format!("no procedure {procedure:?} in this router");
                self.send_error(
                    out,
                    me.key,
                    code::CALL,
                    request,
                    uri::NO_SUCH_PROCEDURE,
                    text,
                );
            }
        }
    }
}

/// The optional first argument `filter_authroles`: a list of authrole strings. Absent (or
/// null) means every session.
fn authroles_filter(payload: &Payload<'_>) -> Result<Option<Vec<Box<str>>>, String> {
    let (args, _) = wire::decode_payload_values(payload)
        .map_err(|error| format!("the arguments cannot be read: {error}"))?;
    match args.first() {
        None | Some(Value::Null) => Ok(None),
        Some(Value::List(roles)) => roles
            .iter()
            .map(|role| {
                role.as_str()
                    .map(Box::from)
                    .ok_or_else(|| format!("filter_authroles must list strings, got {role:?}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(format!(
            "filter_authroles must be a list of authroles, got {other:?}"
        )),
    }
}
