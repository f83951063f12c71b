//! Scenario tests of configuration reload in the sans-IO router (`Router::handle_reconfigure`,
//! what SIGHUP leads to): sessions stay established across a reload, even with a call in
//! flight; a permission added to a role takes effect for the sessions holding that role (the
//! decision cache is cleared), a role removed denies its sessions without closing them, a role
//! given a dynamic authorizer asks it (and asks again after the next reload); a
//! principal removed cannot authenticate any more, a new one can, and a session challenged
//! before the reload finishes against what it was challenged with; a realm added accepts
//! HELLO (also when some shards reloaded before the others); a realm removed refuses new
//! HELLOs while its sessions keep calling. Each scenario runs at 1 shard and at 3.

mod sansio;
#[macro_use]
mod scenario;

use std::borrow::Cow;

use scenario::*;
use wampring::router::{
    uri, AuthMethod, ListenerAuth, MatchPolicy, PermissionConfig, Perms, Principal, RealmConfig,
    RoleConfig, RouterConfig, Secret, TicketSecret,
};
use wampring::wire::{code, Dict, Message, Payload, Serializer, Value};

use Serializer::Json;

fn permission(uri: &str, matching: MatchPolicy, allow: Perms) -> PermissionConfig {
    PermissionConfig {
        uri: uri.into(),
        matching,
        allow,
    }
}

fn ticket_principal(authid: &str, ticket: &str) -> Principal {
    let mut principal = Principal::new(authid, "user");
    principal.ticket = Some(TicketSecret::Plain(Secret(ticket.into())));
    principal
}

/// Listener 0: anonymous (role `user`) and ticket; listener 1: anonymous as role `backend`.
/// `realm1` has no roles and one principal, joe; `secure` has roles: `user` may call under
/// `com.app.`, `backend` may register and call anything.
fn config() -> RouterConfig {
    let mut realm1 = RealmConfig::new("realm1");
    realm1.principals = vec![ticket_principal("joe", "joe-ticket")];
    let mut secure = RealmConfig::new("secure");
    secure.roles = vec![
        RoleConfig {
            name: "user".into(),
            authorizer: None,
            permissions: vec![permission("com.app.", MatchPolicy::Prefix, Perms::CALL)],
        },
        RoleConfig {
            name: "backend".into(),
            authorizer: None,
            permissions: vec![permission(
                "",
                MatchPolicy::Prefix,
                Perms::REGISTER.with(Perms::CALL),
            )],
        },
    ];
    RouterConfig {
        realms: vec![realm1, secure],
        listeners: vec![
            ListenerAuth {
                methods: vec![AuthMethod::Anonymous, AuthMethod::Ticket],
                anonymous_role: "user".into(),
            },
            ListenerAuth {
                methods: vec![AuthMethod::Anonymous],
                anonymous_role: "backend".into(),
            },
        ],
        ..RouterConfig::default()
    }
}

/// `config()` plus a realm `name` without roles.
fn config_with_realm(name: &str) -> RouterConfig {
    let mut config = config();
    config.realms.push(RealmConfig::new(name));
    config
}

/// Connects through `listener` (on the next shard) and joins `realm` anonymously.
fn join(h: &mut Harness, listener: usize, realm: &str) -> Client {
    let mut client = h.connect_via(listener, Json);
    h.hello(&client, realm, hello_details());
    match h.recv(&client).msg() {
        Message::Welcome { session, .. } => client.id = session,
        other => panic!("expected WELCOME into {realm}, got {other:?}"),
    }
    client
}

/// HELLO to `realm` is refused with `reason` (and the session closed).
fn hello_refused(h: &mut Harness, listener: usize, realm: &str, reason: &str) {
    let client = h.connect_via(listener, Json);
    h.hello(&client, realm, hello_details());
    assert_abort(&h.recv(&client), reason);
    assert!(h.was_closed(&client));
}

/// CALL `procedure` from `caller`; `callee` gets the INVOCATION and yields; `caller` gets the
/// RESULT.
fn call_answered(h: &mut Harness, caller: &Client, callee: &Client, procedure: &str) {
    let request = h.call(caller, procedure, Dict::new(), Payload::empty(Json));
    let Message::Invocation {
        request: invocation,
        ..
    } = h.recv(callee).msg()
    else {
        panic!("expected INVOCATION of {procedure}")
    };
    h.send(
        callee,
        &Message::Yield {
            request: invocation,
            options: Dict::new(),
            payload: Payload::empty(Json),
        },
    );
    match h.recv(caller).msg() {
        Message::Result { request: r, .. } => assert_eq!(r, request),
        other => panic!("expected RESULT of {procedure}, got {other:?}"),
    }
}

/// CALL `procedure` from `caller` is refused with ERROR `error`; the session stays.
fn call_refused(h: &mut Harness, caller: &Client, procedure: &str, error: &str) {
    let request = h.call(caller, procedure, Dict::new(), Payload::empty(Json));
    assert_error(&h.recv(caller), code::CALL, request, error);
    assert!(!h.was_closed(caller), "a refused call keeps the session");
}

/// HELLO with a ticket through listener 0; returns the client once challenged.
fn challenged_with_ticket(h: &mut Harness, realm: &str, authid: &str) -> Client {
    let client = h.connect_via(0, Json);
    let mut details = hello_details();
    details.insert("authmethods", Value::List(vec![s("ticket")]));
    details.insert("authid", s(authid));
    h.hello(&client, realm, details);
    match h.recv(&client).msg() {
        Message::Challenge { method, .. } => assert_eq!(method, "ticket"),
        other => panic!("expected CHALLENGE, got {other:?}"),
    }
    client
}

fn authenticate(h: &mut Harness, client: &Client, ticket: &str) {
    h.send(
        client,
        &Message::Authenticate {
            signature: Cow::Owned(ticket.to_string()),
            extra: Dict::new(),
        },
    );
}

/// WELCOME with `authid`; the session id goes into the client.
fn welcomed_as(h: &mut Harness, client: &mut Client, authid: &str) {
    match h.recv(client).msg() {
        Message::Welcome { session, details } => {
            assert_eq!(details.get_str("authid"), Some(authid));
            client.id = session;
        }
        other => panic!("expected WELCOME for {authid}, got {other:?}"),
    }
}

// ------------------------------------------------------------------------------------------

fn sessions_stay_established_across_a_reload_even_with_a_call_in_flight() {
    let mut h = Harness::with_config(config());
    let callee = join(&mut h, 1, "realm1");
    let caller = join(&mut h, 0, "realm1");
    let subscriber = join(&mut h, 0, "realm1");
    h.register(&callee, "com.echo");
    h.subscribe(&subscriber, "com.news");
    call_answered(&mut h, &caller, &callee, "com.echo");

    // A call is pending at the callee when the reload comes; its answer still arrives.
    let request = h.call(&caller, "com.echo", Dict::new(), Payload::empty(Json));
    let Message::Invocation {
        request: invocation,
        ..
    } = h.recv(&callee).msg()
    else {
        panic!("expected INVOCATION")
    };
    let mut next = config_with_realm("realm2");
    next.max_uri_length = 2048;
    next.hello_timeout_ms = 5_000;
    h.reconfigure(next);
    h.send(
        &callee,
        &Message::Yield {
            request: invocation,
            options: Dict::new(),
            payload: Payload::empty(Json),
        },
    );
    match h.recv(&caller).msg() {
        Message::Result { request: r, .. } => assert_eq!(r, request),
        other => panic!("expected RESULT, got {other:?}"),
    }

    for client in [&caller, &callee, &subscriber] {
        assert!(!h.was_closed(client));
        assert_eq!(h.wamp_session_id(client), Some(client.id));
        h.expect_nothing(client);
    }
    assert_eq!(h.session_count(), 3);
    // Registrations and subscriptions made before serve after.
    call_answered(&mut h, &caller, &callee, "com.echo");
    h.publish(&caller, "com.news", Dict::new(), Payload::empty(Json));
    assert!(matches!(h.recv(&subscriber).msg(), Message::Event { .. }));
    // The new limit applies to the next check: a 1500-byte URI passes admission now.
    let long = format!("com.{}", "x".repeat(1500));
    call_refused(&mut h, &caller, &long, uri::NO_SUCH_PROCEDURE);
    assert_eq!(h.stats().protocol_violations, 0);
}

fn a_permission_added_to_a_role_applies_to_its_open_sessions_and_a_removed_role_denies_them() {
    let mut h = Harness::with_config(config());
    let backend = join(&mut h, 1, "secure");
    let user = join(&mut h, 0, "secure");
    h.register(&backend, "com.other.proc");
    h.register(&backend, "com.app.proc");
    // Denied, and the decision is cached for the role.
    call_refused(&mut h, &user, "com.other.proc", uri::NOT_AUTHORIZED);
    call_refused(&mut h, &user, "com.other.proc", uri::NOT_AUTHORIZED);

    let mut next = config();
    next.realms[1].roles[0].permissions.push(permission(
        "com.other.",
        MatchPolicy::Prefix,
        Perms::CALL,
    ));
    h.reconfigure(next.clone());
    call_answered(&mut h, &user, &backend, "com.other.proc");
    call_answered(&mut h, &user, &backend, "com.app.proc");

    // Role `user` goes: its session stays, denied whatever needs a permission.
    next.realms[1].roles.remove(0);
    h.reconfigure(next.clone());
    for procedure in ["com.other.proc", "com.app.proc"] {
        call_refused(&mut h, &user, procedure, uri::NOT_AUTHORIZED);
    }
    assert!(!h.was_closed(&user));
    // The backend's role is untouched.
    call_answered(&mut h, &backend, &backend, "com.app.proc");
    // New sessions of the removed role are refused at HELLO.
    hello_refused(&mut h, 0, "secure", uri::NO_SUCH_ROLE);

    // The role comes back (under the same name): its open session gets its permissions.
    h.reconfigure(config());
    call_answered(&mut h, &user, &backend, "com.app.proc");
    call_refused(&mut h, &user, "com.other.proc", uri::NOT_AUTHORIZED);
    assert_eq!(h.stats().protocol_violations, 0);
}

/// The next INVOCATION to `callee`: its request id and arguments.
fn invoked(h: &mut Harness, callee: &Client) -> (u64, Vec<Value<'static>>) {
    match h.recv(callee).msg() {
        Message::Invocation {
            request, payload, ..
        } => (request, payload_values(&payload).0),
        other => panic!("expected INVOCATION, got {other:?}"),
    }
}

fn yield_value(h: &mut Harness, callee: &Client, request: u64, value: Value<'static>) {
    h.send(
        callee,
        &Message::Yield {
            request,
            options: Dict::new(),
            payload: args(Json, &[value]).as_payload(),
        },
    );
}

fn a_dynamic_authorizer_given_by_a_reload_is_asked_and_its_answers_are_forgotten_on_the_next() {
    let mut h = Harness::with_config(config());
    let backend = join(&mut h, 1, "secure");
    let user = join(&mut h, 0, "secure");
    h.register(&backend, "com.auth.authorize");
    h.register(&backend, "com.app.proc");
    call_answered(&mut h, &user, &backend, "com.app.proc");

    // Role `user` now asks an authorizer (the realm had none: the router opens its caller).
    let mut next = config();
    next.realms[1].roles[0].authorizer = Some("com.auth.authorize".into());
    for round in 0..2 {
        h.reconfigure(next.clone());
        let request = h.call(&user, "com.app.proc", Dict::new(), Payload::empty(Json));
        let (asked, arguments) = invoked(&mut h, &backend);
        assert_eq!(arguments[1], s("com.app.proc"), "round {round}");
        assert_eq!(arguments[2], s("call"));
        yield_value(&mut h, &backend, asked, Value::Bool(true));
        let (invocation, _) = invoked(&mut h, &backend);
        yield_value(&mut h, &backend, invocation, Value::Bool(true));
        match h.recv(&user).msg() {
            Message::Result { request: r, .. } => assert_eq!(r, request),
            other => panic!("expected RESULT, got {other:?}"),
        }
        // Cached until the next reload.
        call_answered(&mut h, &user, &backend, "com.app.proc");
    }
    // Without the authorizer, the permissions decide again, unasked.
    h.reconfigure(config());
    call_answered(&mut h, &user, &backend, "com.app.proc");
    call_refused(&mut h, &user, "com.auth.authorize", uri::NOT_AUTHORIZED);
    h.expect_nothing(&backend);
}

fn a_removed_principal_cannot_authenticate_a_new_one_can_and_a_pending_challenge_finishes() {
    let mut h = Harness::with_config(config());
    let mut joe = challenged_with_ticket(&mut h, "realm1", "joe");
    authenticate(&mut h, &joe, "joe-ticket");
    welcomed_as(&mut h, &mut joe, "joe");
    h.register(&joe, "com.joe");
    // Challenged before the reload, answers after it.
    let mut late = challenged_with_ticket(&mut h, "realm1", "joe");

    let mut next = config();
    next.realms[0].principals = vec![ticket_principal("kim", "kim-ticket")];
    h.reconfigure(next);

    authenticate(&mut h, &late, "joe-ticket");
    welcomed_as(&mut h, &mut late, "joe");

    let again = challenged_with_ticket(&mut h, "realm1", "joe");
    authenticate(&mut h, &again, "joe-ticket");
    assert_abort(&h.recv(&again), uri::AUTHENTICATION_DENIED);
    assert!(h.was_closed(&again));

    let mut kim = challenged_with_ticket(&mut h, "realm1", "kim");
    authenticate(&mut h, &kim, "kim-ticket");
    welcomed_as(&mut h, &mut kim, "kim");

    // joe's sessions stay and keep working.
    assert!(!h.was_closed(&joe) && !h.was_closed(&late));
    call_answered(&mut h, &kim, &joe, "com.joe");
    call_answered(&mut h, &late, &joe, "com.joe");
}

fn a_realm_added_accepts_hello() {
    let mut h = Harness::with_config(config());
    hello_refused(&mut h, 0, "realm2", uri::NO_SUCH_REALM);
    let next = config_with_realm("realm2");
    if h.shards() > 1 {
        // Shard 0 reloads first; a callee joins there and registers, which makes the other
        // shards hold realm2 as a replica before their own reload. They refuse HELLOs to it
        // until then (it is not configured there yet).
        h.cluster.reconfigure_shard(0, &next);
        let callee = h.connect_on(0, Json);
        h.hello(&callee, "realm2", hello_details());
        assert!(matches!(h.recv(&callee).msg(), Message::Welcome { .. }));
        h.register(&callee, "com.two");
        let early = h.connect_on(1, Json);
        h.hello(&early, "realm2", hello_details());
        assert_abort(&h.recv(&early), uri::NO_SUCH_REALM);
        h.reconfigure(next);
        let caller = h.connect_on(1, Json);
        h.hello(&caller, "realm2", hello_details());
        assert!(matches!(h.recv(&caller).msg(), Message::Welcome { .. }));
        call_answered(&mut h, &caller, &callee, "com.two");
    } else {
        h.reconfigure(next);
    }
    let callee = join(&mut h, 1, "realm2");
    let caller = join(&mut h, 0, "realm2");
    h.register(&callee, "com.echo");
    call_answered(&mut h, &caller, &callee, "com.echo");
    assert_eq!(h.stats().shard_messages_ignored, 0);
}

fn a_realm_removed_refuses_new_hellos_while_its_sessions_keep_calling() {
    let mut h = Harness::with_config(config_with_realm("realm2"));
    let callee = join(&mut h, 1, "realm2");
    let caller = join(&mut h, 0, "realm2");
    h.register(&callee, "com.echo");
    call_answered(&mut h, &caller, &callee, "com.echo");

    h.reconfigure(config());
    hello_refused(&mut h, 0, "realm2", uri::NO_SUCH_REALM);
    hello_refused(&mut h, 1, "realm2", uri::NO_SUCH_REALM);
    call_answered(&mut h, &caller, &callee, "com.echo");
    // Its table writes still go through the owner shards.
    h.register(&callee, "com.more");
    call_answered(&mut h, &caller, &callee, "com.more");
    // realm1 is untouched.
    let other = join(&mut h, 0, "realm1");
    assert!(!h.was_closed(&other));

    // Configured again: HELLOs are welcome again, and the old sessions are still there.
    h.reconfigure(config_with_realm("realm2"));
    let third = join(&mut h, 0, "realm2");
    call_answered(&mut h, &third, &callee, "com.echo");
    h.disconnect(&caller);
    h.disconnect(&callee);
    h.disconnect(&third);
    h.disconnect(&other);
    h.assert_tables_empty();
}

at_1_and_3_shards!(
    sessions_stay_established_across_a_reload_even_with_a_call_in_flight,
    a_permission_added_to_a_role_applies_to_its_open_sessions_and_a_removed_role_denies_them,
    a_removed_principal_cannot_authenticate_a_new_one_can_and_a_pending_challenge_finishes,
    a_dynamic_authorizer_given_by_a_reload_is_asked_and_its_answers_are_forgotten_on_the_next,
    a_realm_added_accepts_hello,
    a_realm_removed_refuses_new_hellos_while_its_sessions_keep_calling,
);
