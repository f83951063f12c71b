//! Scenario tests of authentication and authorization in the sans-IO router (digest §11, §12):
//! every method's success (WELCOME with the principal's authid, role, method and provider) and
//! failure (one ABORT `wamp.error.authentication_denied` whatever the cause, after a challenge
//! shaped like a real one), the listener's choice of methods, the authentication deadline,
//! protocol rules while challenged, and each authorization decision of a realm with roles:
//! call, register, publish, subscribe, the meta API, disclosure by permission and undefined
//! roles. Each scenario runs at 1 shard and at 3 through the harness of `tests/scenario`.

mod sansio;
#[macro_use]
mod scenario;

use std::borrow::Cow;

use scenario::*;
use wampring::credentials::{self, cryptosign, scram, ticket, wampcra};
use wampring::router::{
    uri, AuthMethod, AuthenticatorConfig, ListenerAuth, MatchPolicy, PermissionConfig, Perms,
    Principal, RealmConfig, RoleConfig, RouterConfig, Secret, TicketSecret, WampCraSecret,
};
use wampring::wire::{code, Dict, Message, Serializer, Value};

use Serializer::{Json, MsgPack};

const SCRAM_KDF: scram::Kdf = scram::Kdf::Argon2id13 {
    iterations: 2,
    memory: 64,
};

/// The Ed25519 key of principal "dev" (a fixed seed, so every run signs alike).
const DEV_KEY: &str = "4d6f6e74726561756c20657374206c612063617069616c65206475205175c3a9";

/// Listener 0 accepts every method; listener 1 only anonymous; listener 2 only ticket.
/// realm1 has no roles; realm "secure" has roles (see `secure_realm`).
fn config() -> RouterConfig {
    let mut realm = RealmConfig::new("realm1");
    realm.principals = principals();
    RouterConfig {
        realms: vec![realm, secure_realm()],
        listeners: vec![
            ListenerAuth {
                methods: AuthMethod::ALL.to_vec(),
                anonymous_role: "anonymous".into(),
            },
            ListenerAuth::default(),
            ListenerAuth {
                methods: vec![AuthMethod::Ticket],
                anonymous_role: "anonymous".into(),
            },
        ],
        ..RouterConfig::default()
    }
}

fn principals() -> Vec<Principal> {
    let mut joe = Principal::new("joe", "user");
    joe.ticket = Some(TicketSecret::Plain(Secret("joe-ticket".into())));
    let mut ann = Principal::new("ann", "user");
    ann.ticket = Some(TicketSecret::Argon2id(ticket::hash("ann-ticket").into()));
    let mut cra = Principal::new("cra", "backend");
    cra.wampcra = Some(WampCraSecret::Plain(Secret("cra-secret".into())));
    let mut salty = Principal::new("salty", "backend");
    salty.wampcra = Some(WampCraSecret::Salted {
        salt: "pepper".into(),
        iterations: 100,
        keylen: 32,
        key: Secret(wampcra::derive_key("salty-secret", "pepper", 100, 32)),
    });
    let mut dev = Principal::new("dev", "backend");
    let key = cryptosign::parse_private_key(DEV_KEY).unwrap();
    dev.cryptosign = vec![cryptosign::parse_public_key(&cryptosign::public_key_of(&key)).unwrap()];
    let mut sam = Principal::new("sam", "admin");
    sam.scram = Some(scram::derive("sam-password", b"sam salt 16bytes", SCRAM_KDF).unwrap());
    vec![joe, ann, cra, salty, dev, sam]
}

/// "secure": role `user` may call and subscribe under `com.app.` (not `com.app.admin`) and
/// subscribe under `news.`, role
/// `backend` may register under `com.app.` and publish `news..today`, disclosing itself,
/// role `admin` may call the session meta API; `anonymous` may only subscribe to
/// `com.public.`. Listener 2's sessions are tickets, whose principals exist here too.
fn secure_realm() -> RealmConfig {
    let permission = |uri: &str, matching, allow| PermissionConfig {
        uri: uri.into(),
        matching,
        allow,
    };
    let mut realm = RealmConfig::new("secure");
    realm.roles = vec![
        RoleConfig {
            name: "user".into(),
            authorizer: None,
            permissions: vec![
                permission(
                    "com.app.",
                    MatchPolicy::Prefix,
                    Perms::CALL.with(Perms::SUBSCRIBE),
                ),
                permission("com.app.admin", MatchPolicy::Exact, Perms::NONE),
                permission("news.", MatchPolicy::Prefix, Perms::SUBSCRIBE),
            ],
        },
        RoleConfig {
            name: "backend".into(),
            authorizer: None,
            permissions: vec![
                permission(
                    "com.app.",
                    MatchPolicy::Prefix,
                    Perms::REGISTER
                        .with(Perms::CALL)
                        .with(Perms::DISCLOSE_CALLER),
                ),
                permission(
                    "news..today",
                    MatchPolicy::Wildcard,
                    Perms::PUBLISH.with(Perms::DISCLOSE_PUBLISHER),
                ),
            ],
        },
        RoleConfig {
            name: "admin".into(),
            authorizer: None,
            permissions: vec![permission(
                "wamp.session.",
                MatchPolicy::Prefix,
                Perms::CALL,
            )],
        },
        RoleConfig {
            name: "anonymous".into(),
            authorizer: None,
            permissions: vec![permission(
                "com.public.",
                MatchPolicy::Prefix,
                Perms::SUBSCRIBE,
            )],
        },
    ];
    realm.principals = principals();
    realm
}

fn details_for(
    methods: &[&str],
    authid: Option<&str>,
    authextra: Option<Dict<'static>>,
) -> Dict<'static> {
    let mut details = hello_details();
    details.insert(
        "authmethods",
        Value::List(methods.iter().map(|m| s(m)).collect()),
    );
    if let Some(authid) = authid {
        details.insert("authid", s(authid));
    }
    if let Some(extra) = authextra {
        details.insert("authextra", Value::Dict(extra));
    }
    details
}

/// HELLO to `realm`; the CHALLENGE's (method, extra).
fn challenged(
    h: &mut Harness,
    client: &Client,
    realm: &str,
    details: Dict<'static>,
) -> (String, Dict<'static>) {
    h.hello(client, realm, details);
    match h.recv(client).msg() {
        Message::Challenge { method, extra } => (method.into_owned(), extra.into_owned()),
        other => panic!("expected CHALLENGE, got {other:?}"),
    }
}

fn authenticate(h: &mut Harness, client: &Client, signature: &str, extra: Dict<'static>) {
    h.send(
        client,
        &Message::Authenticate {
            signature: Cow::Owned(signature.to_string()),
            extra,
        },
    );
}

/// The WELCOME's (session id, details).
fn welcomed(h: &mut Harness, client: &mut Client) -> Dict<'static> {
    match h.recv(client).msg() {
        Message::Welcome { session, details } => {
            client.id = session;
            details.into_owned()
        }
        other => panic!("expected WELCOME, got {other:?}"),
    }
}

fn assert_identity(details: &Dict<'_>, authid: &str, authrole: &str, authmethod: &str) {
    assert_eq!(details.get_str("authid"), Some(authid));
    assert_eq!(details.get_str("authrole"), Some(authrole));
    assert_eq!(details.get_str("authmethod"), Some(authmethod));
    assert_eq!(details.get_str("authprovider"), Some("static"));
}

/// The one ABORT every failed authentication gets; the session is closed.
fn assert_denied(h: &mut Harness, client: &Client) {
    let received = h.recv(client);
    assert_abort(&received, uri::AUTHENTICATION_DENIED);
    if let Message::Abort { details, .. } = received.msg() {
        assert_eq!(details.get_str("message"), Some("authentication failed"));
    }
    h.expect_nothing(client);
    assert!(h.was_closed(client));
}

/// Joins with a ticket (through `listener`) into `realm`.
fn join_ticket(
    h: &mut Harness,
    listener: usize,
    realm: &str,
    authid: &str,
    secret: &str,
) -> Client {
    let mut client = h.connect_via(listener, Json);
    let (method, extra) = challenged(
        h,
        &client,
        realm,
        details_for(&["ticket"], Some(authid), None),
    );
    assert_eq!((method.as_str(), extra.len()), ("ticket", 0));
    authenticate(h, &client, secret, Dict::new());
    welcomed(h, &mut client);
    client
}

fn join_cryptosign(h: &mut Harness, realm: &str) -> Client {
    let mut client = h.connect_via(0, MsgPack);
    let key = cryptosign::parse_private_key(DEV_KEY).unwrap();
    let mut authextra = Dict::new();
    authextra.insert("pubkey", s(&cryptosign::public_key_of(&key)));
    let (_, extra) = challenged(
        h,
        &client,
        realm,
        details_for(&["cryptosign"], None, Some(authextra)),
    );
    let challenge = hex::decode(extra.get_str("challenge").unwrap()).unwrap();
    authenticate(h, &client, &cryptosign::sign(&key, &challenge), Dict::new());
    let details = welcomed(h, &mut client);
    assert_identity(&details, "dev", "backend", "cryptosign");
    client
}

// ------------------------------------------------------------------------------------------
// Authentication
// ------------------------------------------------------------------------------------------

fn tickets_in_the_clear_and_hashed_welcome_their_principal() {
    let mut h = Harness::with_config(config());
    for (authid, secret) in [("joe", "joe-ticket"), ("ann", "ann-ticket")] {
        let mut client = h.connect_via(0, Json);
        let (method, _) = challenged(
            &mut h,
            &client,
            "realm1",
            details_for(&["ticket"], Some(authid), None),
        );
        assert_eq!(method, "ticket");
        authenticate(&mut h, &client, secret, Dict::new());
        let details = welcomed(&mut h, &mut client);
        assert_identity(&details, authid, "user", "ticket");
        assert_eq!(h.wamp_session_id(&client), Some(client.id));
    }
    assert_eq!(h.stats().challenges_sent, 2);
}

fn a_wrong_ticket_an_unknown_authid_and_a_principal_without_tickets_get_the_same_abort() {
    let mut h = Harness::with_config(config());
    for (authid, secret) in [
        ("joe", "wrong"),
        ("ann", "joe-ticket"),
        ("nobody", "x"),
        ("cra", "cra-secret"),
    ] {
        let client = h.connect_via(0, Json);
        let (method, extra) = challenged(
            &mut h,
            &client,
            "realm1",
            details_for(&["ticket"], Some(authid), None),
        );
        assert_eq!((method.as_str(), extra.len()), ("ticket", 0), "{authid}");
        authenticate(&mut h, &client, secret, Dict::new());
        assert_denied(&mut h, &client);
    }
    assert_eq!(h.stats().authentications_denied, 4);
    assert_eq!(h.stats().sessions_established, 0);
}

fn wampcra_plain_and_salted_sign_a_challenge_naming_the_session() {
    let mut h = Harness::with_config(config());
    for (authid, secret, salted) in [
        ("cra", "cra-secret", false),
        ("salty", "salty-secret", true),
    ] {
        let mut client = h.connect_via(0, MsgPack);
        let (method, extra) = challenged(
            &mut h,
            &client,
            "realm1",
            details_for(&["wampcra"], Some(authid), None),
        );
        assert_eq!(method, "wampcra");
        let challenge = extra.get_str("challenge").unwrap().to_string();
        let fields: serde_json::Value = serde_json::from_str(&challenge).unwrap();
        assert_eq!(fields["authid"], authid);
        assert_eq!(fields["authrole"], "backend");
        assert_eq!(fields["authmethod"], "wampcra");
        let key = if salted {
            assert_eq!(extra.get_str("salt"), Some("pepper"));
            assert_eq!(extra.get("iterations"), Some(&Value::UInt(100)));
            assert_eq!(extra.get("keylen"), Some(&Value::UInt(32)));
            wampcra::derive_key(secret, "pepper", 100, 32)
        } else {
            assert_eq!(extra.get("salt"), None);
            secret.to_string()
        };
        authenticate(
            &mut h,
            &client,
            &wampcra::sign(key.as_bytes(), &challenge),
            Dict::new(),
        );
        let details = welcomed(&mut h, &mut client);
        assert_identity(&details, authid, "backend", "wampcra");
        assert_eq!(
            fields["session"], client.id,
            "the challenge names the session WELCOME gives"
        );
    }
}

fn wampcra_failures_look_like_a_salted_principal_until_the_abort() {
    let mut h = Harness::with_config(config());
    let mut shapes = Vec::new();
    for (authid, secret) in [
        ("salty", "wrong"),
        ("nobody", "x"),
        ("nobody", "x"),
        ("joe", "joe-ticket"),
    ] {
        let client = h.connect_via(0, Json);
        let (_, extra) = challenged(
            &mut h,
            &client,
            "realm1",
            details_for(&["wampcra"], Some(authid), None),
        );
        let challenge = extra.get_str("challenge").unwrap().to_string();
        shapes.push((
            authid,
            extra.get_str("salt").map(str::to_string),
            extra.get("iterations").cloned(),
        ));
        let key = wampcra::derive_key(secret, extra.get_str("salt").unwrap_or(""), 100, 32);
        authenticate(
            &mut h,
            &client,
            &wampcra::sign(key.as_bytes(), &challenge),
            Dict::new(),
        );
        assert_denied(&mut h, &client);
    }
    // The wrong secret was checked against the salted principal's key; a decoy is shaped like
    // the realm's first WAMP-CRA principal ("cra", unsalted), the same for every unknown one.
    assert_eq!(shapes[0].1.as_deref(), Some("pepper"));
    assert_eq!(shapes[0].2, Some(Value::UInt(100)));
    for decoy in &shapes[1..] {
        assert_eq!((&decoy.1, &decoy.2), (&None, &None), "{decoy:?}");
    }
}

fn cryptosign_welcomes_the_key_holder_and_denies_anyone_else() {
    let mut h = Harness::with_config(config());
    join_cryptosign(&mut h, "realm1");

    // A key nobody registered: challenged, then denied.
    let (stranger, stranger_public) = cryptosign::generate();
    let stranger = cryptosign::parse_private_key(&stranger).unwrap();
    let client = h.connect_via(0, Json);
    let mut authextra = Dict::new();
    authextra.insert("pubkey", s(&stranger_public));
    let (_, extra) = challenged(
        &mut h,
        &client,
        "realm1",
        details_for(&["cryptosign"], None, Some(authextra)),
    );
    let challenge = hex::decode(extra.get_str("challenge").unwrap()).unwrap();
    assert_eq!(challenge.len(), 32);
    authenticate(
        &mut h,
        &client,
        &cryptosign::sign(&stranger, &challenge),
        Dict::new(),
    );
    assert_denied(&mut h, &client);

    // The right key signing something else than the challenge.
    let key = cryptosign::parse_private_key(DEV_KEY).unwrap();
    let client = h.connect_via(0, Json);
    let mut authextra = Dict::new();
    authextra.insert("pubkey", s(&cryptosign::public_key_of(&key)));
    challenged(
        &mut h,
        &client,
        "realm1",
        details_for(&["cryptosign"], None, Some(authextra.clone())),
    );
    authenticate(
        &mut h,
        &client,
        &cryptosign::sign(&key, &[0u8; 32]),
        Dict::new(),
    );
    assert_denied(&mut h, &client);

    // The right key claimed by another authid.
    let client = h.connect_via(0, Json);
    let (_, extra) = challenged(
        &mut h,
        &client,
        "realm1",
        details_for(&["cryptosign"], Some("joe"), Some(authextra)),
    );
    let challenge = hex::decode(extra.get_str("challenge").unwrap()).unwrap();
    authenticate(
        &mut h,
        &client,
        &cryptosign::sign(&key, &challenge),
        Dict::new(),
    );
    assert_denied(&mut h, &client);

    // No public key at all: refused at HELLO, saying why.
    let client = h.connect_via(0, Json);
    h.hello(&client, "realm1", details_for(&["cryptosign"], None, None));
    assert_abort(&h.recv(&client), uri::AUTHENTICATION_DENIED);
    assert!(h.was_closed(&client));
}

/// The client side of WAMP-SCRAM, as Autobahn computes it; the proof and the AuthMessage.
fn scram_answer(
    authid: &str,
    password: &str,
    client_nonce: &str,
    extra: &Dict<'_>,
) -> (String, String) {
    let nonce = extra.get_str("nonce").unwrap();
    assert!(nonce.starts_with(client_nonce) && nonce.len() > client_nonce.len());
    let salt_text = extra.get_str("salt").unwrap();
    let salt = credentials::base64_decode(salt_text).unwrap();
    let Some(Value::UInt(iterations)) = extra.get("iterations").cloned() else {
        panic!("iterations missing: {extra:?}");
    };
    let kdf = match extra.get_str("kdf") {
        Some("argon2id-13") => {
            let Some(Value::UInt(memory)) = extra.get("memory").cloned() else {
                panic!("memory missing: {extra:?}");
            };
            scram::Kdf::Argon2id13 {
                iterations: iterations as u32,
                memory: memory as u32,
            }
        }
        other => panic!("kdf {other:?}"),
    };
    let salted = scram::salted_password(password, &salt, kdf).unwrap();
    let message = scram::auth_message(
        authid,
        client_nonce,
        nonce,
        salt_text,
        iterations as u32,
        "",
    );
    (scram::client_proof(&salted, &message), message)
}

fn scram_welcomes_with_the_server_signature_and_denies_a_wrong_password() {
    let mut h = Harness::with_config(config());
    let mut shapes = Vec::new();
    for (authid, password, method, right) in [
        ("sam", "sam-password", "wamp-scram", true),
        ("sam", "sam-password", "scram", true),
        ("sam", "wrong", "wamp-scram", false),
        ("nobody", "x", "wamp-scram", false),
    ] {
        let mut client = h.connect_via(0, Json);
        let mut authextra = Dict::new();
        authextra.insert("nonce", s("Y2xpZW50IG5vbmNl"));
        let (echoed, extra) = challenged(
            &mut h,
            &client,
            "realm1",
            details_for(&[method], Some(authid), Some(authextra)),
        );
        assert_eq!(
            echoed, method,
            "the CHALLENGE names the method as the client did"
        );
        shapes.push((
            extra.get_str("kdf").map(str::to_string),
            extra.get("iterations").cloned(),
        ));
        let (proof, message) = scram_answer(authid, password, "Y2xpZW50IG5vbmNl", &extra);
        let mut answer = Dict::new();
        answer.insert(
            "nonce",
            Value::from(extra.get_str("nonce").unwrap().to_string()),
        );
        authenticate(&mut h, &client, &proof, answer);
        if !right {
            assert_denied(&mut h, &client);
            continue;
        }
        let details = welcomed(&mut h, &mut client);
        assert_identity(&details, "sam", "admin", "wamp-scram");
        let credential = scram::derive("sam-password", b"sam salt 16bytes", SCRAM_KDF).unwrap();
        let expected = scram::server_signature(&credential.server_key, &message);
        let authextra = details.get_dict("authextra").unwrap();
        assert_eq!(
            authextra.get_str("scram_server_signature"),
            Some(expected.as_str())
        );
    }
    assert!(
        shapes.windows(2).all(|pair| pair[0] == pair[1]),
        "{shapes:?}"
    );
}

fn a_listener_offers_only_its_own_methods() {
    let mut h = Harness::with_config(config());
    // Listener 1: anonymous only.
    let client = h.connect_via(1, Json);
    h.hello(
        &client,
        "realm1",
        details_for(&["ticket", "wampcra"], Some("joe"), None),
    );
    assert_abort(&h.recv(&client), uri::NO_MATCHING_AUTH_METHOD);
    let mut client = h.connect_via(1, Json);
    h.hello(
        &client,
        "realm1",
        details_for(&["ticket", "anonymous"], Some("joe"), None),
    );
    let details = welcomed(&mut h, &mut client);
    assert_eq!(details.get_str("authmethod"), Some("anonymous"));
    assert_eq!(details.get_str("authrole"), Some("anonymous"));
    assert_eq!(
        details.get_str("authid"),
        Some(client.id.to_string().as_str())
    );
    // Listener 2: ticket only, so a HELLO without authmethods (anonymous) is refused.
    let client = h.connect_via(2, Json);
    h.hello(&client, "realm1", hello_details());
    assert_abort(&h.recv(&client), uri::NO_MATCHING_AUTH_METHOD);
    join_ticket(&mut h, 2, "realm1", "joe", "joe-ticket");
    // The client's order decides among the methods the listener accepts.
    let client = h.connect_via(0, Json);
    let (method, _) = challenged(
        &mut h,
        &client,
        "realm1",
        details_for(&["wampcra", "ticket"], Some("cra"), None),
    );
    assert_eq!(method, "wampcra");
}

fn a_challenged_session_that_does_not_answer_in_time_is_closed() {
    let mut config = config();
    config.authenticate_timeout_ms = 5_000;
    let mut h = Harness::with_config(config);
    let quiet = h.connect_via(0, Json);
    challenged(
        &mut h,
        &quiet,
        "realm1",
        details_for(&["ticket"], Some("joe"), None),
    );
    let other = join_ticket(&mut h, 0, "realm1", "joe", "joe-ticket");
    let now = h.cluster.now;
    h.cluster.advance_to(now + 4_000);
    h.expect_nothing(&quiet);
    h.cluster.advance_to(now + 5_001);
    assert_abort(&h.recv(&quiet), uri::TIMEOUT);
    assert!(h.was_closed(&quiet));
    assert!(!h.was_closed(&other));
    assert_eq!(h.stats().authentication_timeouts, 1);
}

fn only_authenticate_or_abort_may_follow_a_challenge() {
    let mut h = Harness::with_config(config());
    let client = h.connect_via(0, Json);
    challenged(
        &mut h,
        &client,
        "realm1",
        details_for(&["ticket"], Some("joe"), None),
    );
    h.hello(&client, "realm1", hello_details());
    assert_violation(&mut h, &client);

    let client = h.connect_via(0, Json);
    challenged(
        &mut h,
        &client,
        "realm1",
        details_for(&["ticket"], Some("joe"), None),
    );
    let request = h.request();
    h.send(
        &client,
        &Message::Subscribe {
            request,
            options: Dict::new(),
            topic: Cow::Borrowed("com.x"),
        },
    );
    assert_violation(&mut h, &client);

    // AUTHENTICATE without a CHALLENGE.
    let client = h.connect_via(0, Json);
    authenticate(&mut h, &client, "joe-ticket", Dict::new());
    assert_violation(&mut h, &client);

    // ABORT while challenged ends it quietly; the claimed session id is free again.
    let client = h.connect_via(0, Json);
    challenged(
        &mut h,
        &client,
        "realm1",
        details_for(&["ticket"], Some("joe"), None),
    );
    h.send(
        &client,
        &Message::Abort {
            details: Dict::new(),
            reason: Cow::Borrowed("wamp.close.normal"),
            payload: wampring::wire::Payload::empty(Json),
        },
    );
    h.expect_nothing(&client);
    assert!(h.was_closed(&client));
    assert_eq!(h.stats().sessions_established, 0);
}

// ------------------------------------------------------------------------------------------
// Authorization
// ------------------------------------------------------------------------------------------

fn each_action_needs_a_permission_of_the_role() {
    let mut h = Harness::with_config(config());
    let user = join_ticket(&mut h, 0, "secure", "joe", "joe-ticket");
    let backend = join_cryptosign(&mut h, "secure");

    // register: backend yes, user no.
    h.register(&backend, "com.app.add");
    let request = h.request();
    h.send(
        &user,
        &Message::Register {
            request,
            options: Dict::new(),
            procedure: Cow::Borrowed("com.app.mul"),
        },
    );
    assert_error(&h.recv(&user), code::REGISTER, request, uri::NOT_AUTHORIZED);

    // call: user yes under com.app., but not com.app.admin (the exact permission decides).
    let request = h.call(
        &user,
        "com.app.add",
        Dict::new(),
        args(Json, &[]).as_payload(),
    );
    match h.recv(&backend).msg() {
        Message::Invocation { details, .. } => {
            // backend's own permission discloses callers only for its own calls.
            assert_eq!(details.get("caller"), None);
        }
        other => panic!("expected INVOCATION, got {other:?}"),
    }
    let _ = request;
    let request = h.call(
        &user,
        "com.app.admin",
        Dict::new(),
        args(Json, &[]).as_payload(),
    );
    assert_error(&h.recv(&user), code::CALL, request, uri::NOT_AUTHORIZED);
    let request = h.call(
        &user,
        "org.other",
        Dict::new(),
        args(Json, &[]).as_payload(),
    );
    assert_error(&h.recv(&user), code::CALL, request, uri::NOT_AUTHORIZED);

    // subscribe: user yes, backend no.
    h.subscribe(&user, "news.x.today");
    let request = h.request();
    h.send(
        &backend,
        &Message::Subscribe {
            request,
            options: Dict::new(),
            topic: Cow::Borrowed("news.x.today"),
        },
    );
    assert_error(
        &h.recv(&backend),
        code::SUBSCRIBE,
        request,
        uri::NOT_AUTHORIZED,
    );

    // publish: backend yes (disclosed by its permission), user no (acknowledged: ERROR;
    // not acknowledged: dropped).
    h.publish(
        &backend,
        "news.x.today",
        Dict::new(),
        args(Json, &[]).as_payload(),
    );
    match h.recv(&user).msg() {
        Message::Event { details, .. } => {
            assert_eq!(details.get("publisher"), Some(&Value::UInt(backend.id)));
            assert_eq!(details.get_str("publisher_authrole"), Some("backend"));
        }
        other => panic!("expected EVENT, got {other:?}"),
    }
    let acknowledged = opts(&[
        ("acknowledge", Value::Bool(true)),
        ("exclude_me", Value::Bool(false)),
    ]);
    let request = h.publish(
        &user,
        "news.x.today",
        acknowledged,
        args(Json, &[]).as_payload(),
    );
    assert_error(&h.recv(&user), code::PUBLISH, request, uri::NOT_AUTHORIZED);
    h.publish(
        &user,
        "news.x.today",
        opts(&[("exclude_me", Value::Bool(false))]),
        args(Json, &[]).as_payload(),
    );
    h.expect_nothing(&user);
    h.expect_nothing(&backend);
    assert_eq!(h.stats().authorizations_denied, 6);
}

fn a_permission_may_disclose_the_caller() {
    let mut h = Harness::with_config(config());
    let callee = join_cryptosign(&mut h, "secure");
    let caller = join_cryptosign(&mut h, "secure");
    h.register(&callee, "com.app.echo");
    h.call(
        &caller,
        "com.app.echo",
        Dict::new(),
        args(Json, &[]).as_payload(),
    );
    match h.recv(&callee).msg() {
        Message::Invocation { details, .. } => {
            assert_eq!(details.get("caller"), Some(&Value::UInt(caller.id)));
            assert_eq!(details.get_str("caller_authid"), Some("dev"));
        }
        other => panic!("expected INVOCATION, got {other:?}"),
    }
}

fn the_meta_api_is_authorized_like_any_uri() {
    let mut h = Harness::with_config(config());
    let user = join_ticket(&mut h, 0, "secure", "joe", "joe-ticket");
    let request = h.call(
        &user,
        "wamp.session.count",
        Dict::new(),
        args(Json, &[]).as_payload(),
    );
    assert_error(&h.recv(&user), code::CALL, request, uri::NOT_AUTHORIZED);
    let request = h.request();
    h.send(
        &user,
        &Message::Subscribe {
            request,
            options: Dict::new(),
            topic: Cow::Borrowed("wamp.session.on_join"),
        },
    );
    assert_error(
        &h.recv(&user),
        code::SUBSCRIBE,
        request,
        uri::NOT_AUTHORIZED,
    );

    let mut admin = h.connect_via(0, Json);
    let mut authextra = Dict::new();
    authextra.insert("nonce", s("bm9uY2U="));
    let (_, extra) = challenged(
        &mut h,
        &admin,
        "secure",
        details_for(&["wamp-scram"], Some("sam"), Some(authextra)),
    );
    let (proof, _) = scram_answer("sam", "sam-password", "bm9uY2U=", &extra);
    authenticate(&mut h, &admin, &proof, Dict::new());
    welcomed(&mut h, &mut admin);
    h.call(
        &admin,
        "wamp.session.count",
        Dict::new(),
        args(Json, &[]).as_payload(),
    );
    match h.recv(&admin).msg() {
        Message::Result { payload, .. } => {
            assert_eq!(payload_values(&payload).0, vec![Value::UInt(2)]);
        }
        other => panic!("expected RESULT, got {other:?}"),
    }
}

fn roles_a_realm_does_not_define_are_refused_at_join() {
    let mut config = config();
    // Anonymous sessions of listener 0 get a role "secure" does not define.
    config.listeners[0].anonymous_role = "guest".into();
    let mut h = Harness::with_config(config);
    let client = h.connect_via(0, Json);
    h.hello(&client, "secure", details_for(&["anonymous"], None, None));
    assert_abort(&h.recv(&client), uri::NO_SUCH_ROLE);
    assert!(h.was_closed(&client));
    // realm1 defines no roles: every role may do everything there.
    let mut client = h.connect_via(0, Json);
    h.hello(&client, "realm1", details_for(&["anonymous"], None, None));
    let details = welcomed(&mut h, &mut client);
    assert_eq!(details.get_str("authrole"), Some("guest"));
    h.register(&client, "anything.at.all");
    // The anonymous role of listener 1 is defined in "secure", and only subscribes.
    let mut anonymous = h.connect_via(1, Json);
    h.hello(&anonymous, "secure", hello_details());
    welcomed(&mut h, &mut anonymous);
    h.subscribe(&anonymous, "com.public.weather");
    let request = h.call(
        &anonymous,
        "com.app.add",
        Dict::new(),
        args(Json, &[]).as_payload(),
    );
    assert_error(
        &h.recv(&anonymous),
        code::CALL,
        request,
        uri::NOT_AUTHORIZED,
    );
}

fn a_testament_needs_the_publish_permission_of_its_topic() {
    let mut config = config();
    // admin may also publish under com.app.audit.
    config.realms[1].roles[2]
        .permissions
        .push(PermissionConfig {
            uri: "com.app.audit.".into(),
            matching: MatchPolicy::Prefix,
            allow: Perms::PUBLISH,
        });
    let mut h = Harness::with_config(config);
    let mut admin = h.connect_via(0, Json);
    let mut authextra = Dict::new();
    authextra.insert("nonce", s("bm9uY2U="));
    let (_, extra) = challenged(
        &mut h,
        &admin,
        "secure",
        details_for(&["wamp-scram"], Some("sam"), Some(authextra)),
    );
    let (proof, _) = scram_answer("sam", "sam-password", "bm9uY2U=", &extra);
    authenticate(&mut h, &admin, &proof, Dict::new());
    welcomed(&mut h, &mut admin);
    for (topic, allowed) in [("com.app.audit.gone", true), ("com.app.news", false)] {
        let request = h.call(
            &admin,
            "wamp.session.add_testament",
            Dict::new(),
            args(Json, &[s(topic), Value::List(vec![])]).as_payload(),
        );
        match h.recv(&admin).msg() {
            Message::Result { .. } => assert!(allowed, "{topic}"),
            Message::Error {
                request: r, error, ..
            } => {
                assert_eq!(
                    (r, error.as_ref(), allowed),
                    (request, uri::NOT_AUTHORIZED, false),
                    "{topic}"
                );
            }
            other => panic!("expected RESULT or ERROR, got {other:?}"),
        }
    }
}

at_1_and_3_shards!(
    a_dynamic_authenticator_vouches_for_tickets,
    a_dynamic_authenticator_gives_wampcra_secrets_and_cryptosign_keys,
    a_dynamic_authorizer_decides_in_order_and_its_answers_are_cached,
    a_testament_needs_the_publish_permission_of_its_topic,
    tickets_in_the_clear_and_hashed_welcome_their_principal,
    a_wrong_ticket_an_unknown_authid_and_a_principal_without_tickets_get_the_same_abort,
    wampcra_plain_and_salted_sign_a_challenge_naming_the_session,
    wampcra_failures_look_like_a_salted_principal_until_the_abort,
    cryptosign_welcomes_the_key_holder_and_denies_anyone_else,
    scram_welcomes_with_the_server_signature_and_denies_a_wrong_password,
    a_listener_offers_only_its_own_methods,
    a_challenged_session_that_does_not_answer_in_time_is_closed,
    only_authenticate_or_abort_may_follow_a_challenge,
    each_action_needs_a_permission_of_the_role,
    a_permission_may_disclose_the_caller,
    the_meta_api_is_authorized_like_any_uri,
    roles_a_realm_does_not_define_are_refused_at_join,
);

// ------------------------------------------------------------------------------------------
// Dynamic authenticator and authorizer
// ------------------------------------------------------------------------------------------

/// Realm "dyn": ticket, WAMP-CRA and Cryptosign sessions are vouched for by
/// `com.auth.authenticate`, registered in realm "auth"; role `checked` asks `com.auth.authorize`
/// (registered in "dyn" by an anonymous session) about everything it does.
fn dynamic_config() -> RouterConfig {
    let mut config = config();
    let mut dynamic = RealmConfig::new("dyn");
    dynamic.authenticator = Some(AuthenticatorConfig {
        procedure: "com.auth.authenticate".into(),
        realm: "auth".into(),
        methods: vec![
            AuthMethod::Ticket,
            AuthMethod::WampCra,
            AuthMethod::Cryptosign,
        ],
    });
    dynamic.roles = vec![
        RoleConfig {
            name: "checked".into(),
            authorizer: Some("com.auth.authorize".into()),
            permissions: Vec::new(),
        },
        RoleConfig {
            name: "plain".into(),
            authorizer: None,
            permissions: vec![PermissionConfig {
                uri: "com.".into(),
                matching: MatchPolicy::Prefix,
                allow: Perms::CALL,
            }],
        },
        RoleConfig {
            name: "anonymous".into(),
            authorizer: None,
            permissions: vec![PermissionConfig {
                uri: "com.auth.".into(),
                matching: MatchPolicy::Prefix,
                allow: Perms::REGISTER,
            }],
        },
    ];
    config.realms.push(dynamic);
    config.realms.push(RealmConfig::new("auth"));
    config
}

/// An anonymous session of `realm` that registered `procedure`.
fn backend(h: &mut Harness, realm: &str, procedure: &str) -> Client {
    let mut client = h.connect_via(1, Json);
    h.hello(&client, realm, hello_details());
    welcomed(h, &mut client);
    h.register(&client, procedure);
    client
}

/// The next INVOCATION to `backend`: its request id and arguments.
fn invoked(h: &mut Harness, backend: &Client) -> (u64, Vec<Value<'static>>) {
    match h.recv(backend).msg() {
        Message::Invocation {
            request, payload, ..
        } => (request, payload_values(&payload).0),
        other => panic!("expected INVOCATION, got {other:?}"),
    }
}

fn answer(h: &mut Harness, backend: &Client, request: u64, value: Value<'static>) {
    h.send(
        backend,
        &Message::Yield {
            request,
            options: Dict::new(),
            payload: args(Json, &[value]).as_payload(),
        },
    );
}

fn refuse(h: &mut Harness, backend: &Client, request: u64, error: &'static str) {
    h.send(
        backend,
        &Message::Error {
            request_type: code::INVOCATION,
            request,
            details: Dict::new(),
            error: Cow::Borrowed(error),
            payload: wampring::wire::Payload::empty(Json),
        },
    );
}

fn dict(entries: &[(&'static str, Value<'static>)]) -> Value<'static> {
    Value::Dict(opts(entries))
}

fn a_dynamic_authenticator_vouches_for_tickets() {
    let mut h = Harness::with_config(dynamic_config());
    let auth = backend(&mut h, "auth", "com.auth.authenticate");

    let mut client = h.connect_via(0, MsgPack);
    let (method, _) = challenged(
        &mut h,
        &client,
        "dyn",
        details_for(&["ticket"], Some("joe"), None),
    );
    assert_eq!(method, "ticket");
    authenticate(&mut h, &client, "token-1", Dict::new());
    let (request, asked) = invoked(&mut h, &auth);
    assert_eq!(asked[0], s("dyn"));
    assert_eq!(asked[1], s("joe"));
    let Value::Dict(details) = &asked[2] else {
        panic!("details: {asked:?}");
    };
    assert_eq!(details.get_str("ticket"), Some("token-1"));
    assert_eq!(details.get_str("authmethod"), Some("ticket"));
    h.expect_nothing(&client);
    answer(
        &mut h,
        &auth,
        request,
        dict(&[("role", s("plain")), ("authid", s("joe@example.com"))]),
    );
    let details = welcomed(&mut h, &mut client);
    assert_eq!(details.get_str("authid"), Some("joe@example.com"));
    assert_eq!(details.get_str("authrole"), Some("plain"));
    assert_eq!(details.get_str("authprovider"), Some("dynamic"));

    // A plain role name is an answer too.
    let mut client = h.connect_via(0, Json);
    challenged(
        &mut h,
        &client,
        "dyn",
        details_for(&["ticket"], Some("ann"), None),
    );
    authenticate(&mut h, &client, "token-2", Dict::new());
    let (request, _) = invoked(&mut h, &auth);
    answer(&mut h, &auth, request, s("plain"));
    assert_identity_dynamic(&welcomed(&mut h, &mut client), "ann", "plain", "ticket");

    // The authenticator's ERROR denies; a role the realm does not define is refused.
    let client = h.connect_via(0, Json);
    challenged(
        &mut h,
        &client,
        "dyn",
        details_for(&["ticket"], Some("eve"), None),
    );
    authenticate(&mut h, &client, "forged", Dict::new());
    let (request, _) = invoked(&mut h, &auth);
    refuse(&mut h, &auth, request, "com.example.invalid_ticket");
    assert_denied(&mut h, &client);
    let client = h.connect_via(0, Json);
    challenged(
        &mut h,
        &client,
        "dyn",
        details_for(&["ticket"], Some("eve"), None),
    );
    authenticate(&mut h, &client, "t", Dict::new());
    let (request, _) = invoked(&mut h, &auth);
    answer(&mut h, &auth, request, s("superuser"));
    assert_abort(&h.recv(&client), uri::NO_SUCH_ROLE);

    // Without the authenticator: the router's failure, not the client's.
    h.disconnect(&auth);
    let client = h.connect_via(0, Json);
    challenged(
        &mut h,
        &client,
        "dyn",
        details_for(&["ticket"], Some("joe"), None),
    );
    authenticate(&mut h, &client, "token-1", Dict::new());
    assert_abort(&h.recv(&client), uri::AUTHENTICATION_FAILED);
    assert!(h.was_closed(&client));
}

fn assert_identity_dynamic(details: &Dict<'_>, authid: &str, authrole: &str, authmethod: &str) {
    assert_eq!(details.get_str("authid"), Some(authid));
    assert_eq!(details.get_str("authrole"), Some(authrole));
    assert_eq!(details.get_str("authmethod"), Some(authmethod));
    assert_eq!(details.get_str("authprovider"), Some("dynamic"));
}

fn a_dynamic_authenticator_gives_wampcra_secrets_and_cryptosign_keys() {
    let mut h = Harness::with_config(dynamic_config());
    let auth = backend(&mut h, "auth", "com.auth.authenticate");

    // WAMP-CRA: asked at HELLO, the CHALLENGE follows the answer (salted here).
    let mut client = h.connect_via(0, Json);
    h.hello(&client, "dyn", details_for(&["wampcra"], Some("cra"), None));
    let (request, asked) = invoked(&mut h, &auth);
    assert_eq!(asked[1], s("cra"));
    h.expect_nothing(&client);
    answer(
        &mut h,
        &auth,
        request,
        dict(&[
            ("secret", s("dyn-secret")),
            ("role", s("plain")),
            ("salt", s("nacl")),
            ("iterations", Value::UInt(10)),
            ("keylen", Value::UInt(16)),
        ]),
    );
    let extra = match h.recv(&client).msg() {
        Message::Challenge { extra, .. } => extra.into_owned(),
        other => panic!("expected CHALLENGE, got {other:?}"),
    };
    assert_eq!(extra.get_str("salt"), Some("nacl"));
    let key = wampcra::derive_key("dyn-secret", "nacl", 10, 16);
    let challenge = extra.get_str("challenge").unwrap();
    authenticate(
        &mut h,
        &client,
        &wampcra::sign(key.as_bytes(), challenge),
        Dict::new(),
    );
    assert_identity_dynamic(&welcomed(&mut h, &mut client), "cra", "plain", "wampcra");

    // Cryptosign: the answer names the key; a session holding another one is denied.
    for (holder, right) in [
        (DEV_KEY.to_string(), true),
        (cryptosign::generate().0, false),
    ] {
        let key = cryptosign::parse_private_key(&holder).unwrap();
        let mut client = h.connect_via(0, Json);
        let mut authextra = Dict::new();
        authextra.insert("pubkey", s(&cryptosign::public_key_of(&key)));
        h.hello(
            &client,
            "dyn",
            details_for(&["cryptosign"], Some("dev"), Some(authextra)),
        );
        let (request, asked) = invoked(&mut h, &auth);
        let Value::Dict(details) = &asked[2] else {
            panic!("details: {asked:?}");
        };
        assert_eq!(
            details
                .get_dict("authextra")
                .and_then(|e| e.get_str("pubkey")),
            Some(cryptosign::public_key_of(&key).as_str())
        );
        let dev = cryptosign::public_key_of(&cryptosign::parse_private_key(DEV_KEY).unwrap());
        answer(
            &mut h,
            &auth,
            request,
            dict(&[("pubkey", s(&dev)), ("role", s("plain"))]),
        );
        let extra = match h.recv(&client).msg() {
            Message::Challenge { extra, .. } => extra.into_owned(),
            other => panic!("expected CHALLENGE, got {other:?}"),
        };
        let challenge = hex::decode(extra.get_str("challenge").unwrap()).unwrap();
        authenticate(
            &mut h,
            &client,
            &cryptosign::sign(&key, &challenge),
            Dict::new(),
        );
        if right {
            assert_identity_dynamic(&welcomed(&mut h, &mut client), "dev", "plain", "cryptosign");
        } else {
            assert_denied(&mut h, &client);
        }
    }
}

/// A session of role `checked` in "dyn", through the dynamic authenticator.
fn checked_session(h: &mut Harness, auth: &Client) -> Client {
    let mut client = h.connect_via(0, Json);
    challenged(
        h,
        &client,
        "dyn",
        details_for(&["ticket"], Some("joe"), None),
    );
    authenticate(h, &client, "t", Dict::new());
    let (request, _) = invoked(h, auth);
    answer(h, auth, request, s("checked"));
    welcomed(h, &mut client);
    client
}

fn a_dynamic_authorizer_decides_in_order_and_its_answers_are_cached() {
    let mut h = Harness::with_config(dynamic_config());
    let auth = backend(&mut h, "auth", "com.auth.authenticate");
    let authorizer = backend(&mut h, "dyn", "com.auth.authorize");
    let client = checked_session(&mut h, &auth);

    // A CALL waits for the authorizer, and the SUBSCRIBE sent after it waits behind it.
    let call = h.call(
        &client,
        "com.app.add",
        Dict::new(),
        args(Json, &[]).as_payload(),
    );
    let subscribe = h.request();
    h.send(
        &client,
        &Message::Subscribe {
            request: subscribe,
            options: Dict::new(),
            topic: Cow::Borrowed("com.app.news"),
        },
    );
    let (request, asked) = invoked(&mut h, &authorizer);
    let Value::Dict(session) = &asked[0] else {
        panic!("session: {asked:?}");
    };
    assert_eq!(session.get("session"), Some(&Value::UInt(client.id)));
    assert_eq!(session.get_str("authrole"), Some("checked"));
    assert_eq!((&asked[1], &asked[2]), (&s("com.app.add"), &s("call")));
    h.expect_nothing(&client);
    answer(&mut h, &authorizer, request, Value::Bool(false));
    assert_error(&h.recv(&client), code::CALL, call, uri::NOT_AUTHORIZED);
    let (request, asked) = invoked(&mut h, &authorizer);
    assert_eq!(
        (&asked[1], &asked[2]),
        (&s("com.app.news"), &s("subscribe"))
    );
    answer(
        &mut h,
        &authorizer,
        request,
        dict(&[("allow", Value::Bool(true))]),
    );
    match h.recv(&client).msg() {
        Message::Subscribed { request, .. } => assert_eq!(request, subscribe),
        other => panic!("expected SUBSCRIBED, got {other:?}"),
    }

    // Cached: the same CALL is refused without asking again.
    let call = h.call(
        &client,
        "com.app.add",
        Dict::new(),
        args(Json, &[]).as_payload(),
    );
    assert_error(&h.recv(&client), code::CALL, call, uri::NOT_AUTHORIZED);
    h.expect_nothing(&authorizer);

    // cache: false answers one message only; a failing authorizer gets authorization_failed.
    for _ in 0..2 {
        let publish = h.publish(
            &client,
            "com.app.news",
            opts(&[("acknowledge", Value::Bool(true))]),
            args(Json, &[]).as_payload(),
        );
        let (request, _) = invoked(&mut h, &authorizer);
        answer(
            &mut h,
            &authorizer,
            request,
            dict(&[("allow", Value::Bool(true)), ("cache", Value::Bool(false))]),
        );
        match h.recv(&client).msg() {
            Message::Published { request, .. } => assert_eq!(request, publish),
            other => panic!("expected PUBLISHED, got {other:?}"),
        }
    }
    let register = h.request();
    h.send(
        &client,
        &Message::Register {
            request: register,
            options: Dict::new(),
            procedure: Cow::Borrowed("com.app.mine"),
        },
    );
    let (request, _) = invoked(&mut h, &authorizer);
    refuse(&mut h, &authorizer, request, "com.example.oops");
    assert_error(
        &h.recv(&client),
        code::REGISTER,
        register,
        uri::AUTHORIZATION_FAILED,
    );
}
