//! The URIs the router itself puts into ABORT, GOODBYE and ERROR messages (digest §12), in one
//! place so tests and clients can match on them.

pub const INVALID_URI: &str = "wamp.error.invalid_uri";
pub const NO_SUCH_REALM: &str = "wamp.error.no_such_realm";
pub const NO_MATCHING_AUTH_METHOD: &str = "wamp.error.no_matching_auth_method";
pub const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";
/// ABORT of every failed authentication (wrong secret, unknown authid, no secret for the
/// method): one answer, so that none tells which principals exist.
pub const AUTHENTICATION_DENIED: &str = "wamp.error.authentication_denied";
/// ABORT: the dynamic authenticator could not be asked (no callee, no answer in time) or
/// answered something unusable: a failure of the router's side, not of the client's secret.
pub const AUTHENTICATION_FAILED: &str = "wamp.error.authentication_failed";
/// ERROR: the dynamic authorizer could not be asked or answered something unusable.
pub const AUTHORIZATION_FAILED: &str = "wamp.error.authorization_failed";
/// ABORT: the principal's or the listener's role is not defined in a realm that defines roles.
pub const NO_SUCH_ROLE: &str = "wamp.error.no_such_role";
/// ERROR: the session's role may not do this on this URI.
pub const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";
pub const NO_SUCH_PROCEDURE: &str = "wamp.error.no_such_procedure";
pub const PROCEDURE_ALREADY_EXISTS: &str = "wamp.error.procedure_already_exists";
pub const NO_SUCH_REGISTRATION: &str = "wamp.error.no_such_registration";
pub const NO_SUCH_SUBSCRIPTION: &str = "wamp.error.no_such_subscription";
pub const CANCELED: &str = "wamp.error.canceled";
/// A callee asks the dealer to try another callee (call_reroute).
pub const UNAVAILABLE: &str = "wamp.error.unavailable";
/// Every callee of a procedure answered `wamp.error.unavailable`.
pub const NO_AVAILABLE_CALLEE: &str = "wamp.error.no_available_callee";
/// The peer a request needs lacks a feature (a callee that cannot take a streamed call).
pub const FEATURE_NOT_SUPPORTED: &str = "wamp.error.feature_not_supported";
/// A call's `timeout` passed before the callee answered (call_timeout).
pub const TIMEOUT: &str = "wamp.error.timeout";
/// A REGISTER/SUBSCRIBE option this router does not implement (pattern match).
pub const OPTION_NOT_ALLOWED: &str = "wamp.error.option_not_allowed";
/// A payload that cannot be represented in the receiver's serializer, or a REGISTER whose
/// `invoke` names no policy.
pub const INVALID_ARGUMENT: &str = "wamp.error.invalid_argument";
/// A caller hit `max_pending_calls_per_session`. Not in the spec; `wamp.` is reserved for
/// spec-defined URIs, so it lives in the router's own namespace.
pub const PENDING_CALL_LIMIT: &str = "wampring.error.pending_call_limit_exceeded";
/// A session hit `max_registrations_per_session` (router namespace, as above).
pub const TOO_MANY_REGISTRATIONS: &str = "wampring.error.too_many_registrations";
/// ABORT reason for a session disconnected as a slow consumer (router namespace).
pub const SLOW_CONSUMER: &str = "wampring.error.slow_consumer";
/// A session hit `max_subscriptions_per_session` (router namespace, as above).
pub const TOO_MANY_SUBSCRIPTIONS: &str = "wampring.error.too_many_subscriptions";
/// A session hit `max_testaments_per_session` (router namespace, as above).
pub const TOO_MANY_TESTAMENTS: &str = "wampring.error.too_many_testaments";
/// `wamp.session.get`/`kill` of a session that is not there (digest §12).
pub const NO_SUCH_SESSION: &str = "wamp.error.no_such_session";
/// A testament with a scope other than "destroyed" or "detached" (Crossbar.io's URI).
pub const TESTAMENT_ERROR: &str = "wamp.error.testament_error";
/// The default reason of a GOODBYE sent by `wamp.session.kill*` (digest §12).
pub const CLOSE_KILLED: &str = "wamp.close.killed";

/// True for URIs in the router's own `wamp.` namespace: clients may not register procedures
/// or publish to topics there (they may call and subscribe).
pub fn is_reserved(uri: &str) -> bool {
    uri == "wamp" || uri.starts_with("wamp.")
}

pub const CLOSE_GOODBYE_AND_OUT: &str = "wamp.close.goodbye_and_out";
pub const CLOSE_SYSTEM_SHUTDOWN: &str = "wamp.close.system_shutdown";
