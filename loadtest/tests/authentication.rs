//! Authentication end to end, through the `wampring-load` binary and `Link::join`, against a
//! small authenticating router written here (RawSocket, JSON, one thread per connection, on
//! 127.0.0.1): it challenges each method the way Crossbar.io does, checks every AUTHENTICATE
//! with `wampring::credentials` (the router side of the same crypto), and answers WELCOME or
//! ABORT. wampring itself is checked in `against_wampring.rs`; this router challenges the way
//! Crossbar.io does where the two differ (the SCRAM method name, a nonce made from bytes), and
//! can misbehave on purpose (a forged SCRAM server signature).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{connect_with_auth_fails, count, run_connect_with_auth};
use serde_json::{json, Value};
use wampring::credentials::{self, cryptosign, scram, wampcra};

/// What the mock router accepts: one principal per method.
#[derive(Clone)]
struct Principals {
    ticket: (&'static str, &'static str),
    /// authid, secret, and for salted WAMP-CRA (salt, iterations, keylen).
    wampcra: (&'static str, &'static str, Option<(&'static str, u32, u32)>),
    /// The public key (hex) of the one Cryptosign principal.
    cryptosign_public: String,
    /// authid, password, kdf, and the name of the SCRAM challenge (`scram` like Crossbar.io).
    scram: (&'static str, &'static str, scram::Kdf, &'static str),
    /// Send a wrong SCRAM server signature in WELCOME.
    forge_server_signature: bool,
}

const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

fn principals() -> Principals {
    let key = cryptosign::parse_private_key(SEED).unwrap();
    Principals {
        ticket: ("joe", "ticket-1"),
        wampcra: ("cra", "cra-secret", None),
        cryptosign_public: cryptosign::public_key_of(&key),
        scram: (
            "alice",
            "pw",
            scram::Kdf::Pbkdf2 { iterations: 100 },
            "wamp-scram",
        ),
        forge_server_signature: false,
    }
}

struct MockRouter {
    port: u16,
    stop: Arc<AtomicBool>,
    /// Sessions welcomed after authentication, and authentications refused.
    welcomed: Arc<AtomicU64>,
    refused: Arc<Mutex<Vec<String>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl MockRouter {
    fn start(principals: Principals) -> MockRouter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let welcomed = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (stop, welcomed, refused) = (stop.clone(), welcomed.clone(), refused.clone());
            std::thread::spawn(move || {
                let mut next_session = 1u64;
                while !stop.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (p, w, r) = (principals.clone(), welcomed.clone(), refused.clone());
                            let session = next_session;
                            next_session += 1;
                            std::thread::spawn(move || {
                                let _ = serve(stream, &p, session, &w, &r);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        MockRouter {
            port,
            stop,
            welcomed,
            refused,
            acceptor: Some(acceptor),
        }
    }

    fn url(&self) -> String {
        format!("rs://127.0.0.1:{}", self.port)
    }

    fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }
}

impl Drop for MockRouter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn read_frame(stream: &mut TcpStream) -> std::io::Result<Value> {
    loop {
        let mut head = [0u8; 4];
        stream.read_exact(&mut head)?;
        let len = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body)?;
        match head[0] & 0x07 {
            0 => {
                return serde_json::from_slice(&body)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            }
            1 => {
                // ping: pong with the same payload
                let mut pong = vec![2, head[1], head[2], head[3]];
                pong.extend_from_slice(&body);
                stream.write_all(&pong)?;
            }
            _ => {}
        }
    }
}

fn write_frame(stream: &mut TcpStream, message: &Value) -> std::io::Result<()> {
    let body = serde_json::to_vec(message).unwrap();
    let len = (body.len() as u32).to_be_bytes();
    let mut frame = vec![0, len[1], len[2], len[3]];
    frame.extend_from_slice(&body);
    stream.write_all(&frame)
}

/// One connection: RawSocket handshake (JSON only), HELLO, the method's CHALLENGE and check,
/// WELCOME or ABORT, then GOODBYE.
fn serve(
    mut stream: TcpStream,
    p: &Principals,
    session: u64,
    welcomed: &AtomicU64,
    refused: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut hello = [0u8; 4];
    stream.read_exact(&mut hello)?;
    assert_eq!((hello[0], hello[1] & 0x0f), (0x7f, 1), "RawSocket JSON");
    stream.write_all(&[0x7f, 0xf1, 0, 0])?;
    let hello = read_frame(&mut stream)?;
    assert_eq!(hello[0], 1, "HELLO first: {hello}");
    let details = &hello[2];
    let method = details["authmethods"][0].as_str().unwrap_or("").to_string();
    let authid = details["authid"].as_str().unwrap_or("").to_string();
    let outcome = authenticate(&mut stream, p, session, &method, &authid, details)?;
    match outcome {
        Ok(authextra) => {
            welcomed.fetch_add(1, Ordering::AcqRel);
            write_frame(
                &mut stream,
                &json!([2, session, {"roles": {"broker": {}, "dealer": {}}, "authid": authid,
                    "authrole": "user", "authmethod": method, "authprovider": "static",
                    "authextra": authextra}]),
            )?;
        }
        Err(why) => {
            refused.lock().unwrap().push(format!("{method}: {why}"));
            write_frame(
                &mut stream,
                &json!([3, {"message": why}, "wamp.error.not_authorized"]),
            )?;
            return Ok(());
        }
    }
    loop {
        let message = read_frame(&mut stream)?;
        if message[0] == 6 {
            write_frame(&mut stream, &json!([6, {}, "wamp.close.goodbye_and_out"]))?;
        }
    }
}

/// The CHALLENGE/AUTHENTICATE exchange of `method`: the WELCOME authextra, or why not.
fn authenticate(
    stream: &mut TcpStream,
    p: &Principals,
    session: u64,
    method: &str,
    authid: &str,
    details: &Value,
) -> std::io::Result<Result<Value, String>> {
    let mut challenge_and_read = |name: &str, extra: Value| -> std::io::Result<(String, Value)> {
        write_frame(stream, &json!([4, name, extra]))?;
        let reply = read_frame(stream)?;
        assert_eq!(reply[0], 5, "AUTHENTICATE expected: {reply}");
        Ok((
            reply[1].as_str().unwrap_or("").to_string(),
            reply[2].clone(),
        ))
    };
    let denied = |why: &str| Ok(Err(why.to_string()));
    match method {
        "" | "anonymous" => Ok(Ok(json!({}))),
        "ticket" => {
            if authid != p.ticket.0 {
                return denied("unknown authid");
            }
            let (sent, _) = challenge_and_read("ticket", json!({}))?;
            Ok(if sent == p.ticket.1 {
                Ok(json!({}))
            } else {
                Err("wrong ticket".into())
            })
        }
        "wampcra" => {
            let (id, secret, salted) = p.wampcra;
            if authid != id {
                return denied("unknown authid");
            }
            let challenge = json!({"authid": authid, "authrole": "user", "authmethod": "wampcra",
                "authprovider": "static", "nonce": format!("n{session}"),
                "timestamp": "2026-12-02T19:00:00.000Z", "session": session})
            .to_string();
            let mut extra = json!({"challenge": challenge});
            let key = match salted {
                Some((salt, iterations, keylen)) => {
                    extra["salt"] = json!(salt);
                    extra["iterations"] = json!(iterations);
                    extra["keylen"] = json!(keylen);
                    wampcra::derive_key(secret, salt, iterations, keylen).into_bytes()
                }
                None => secret.as_bytes().to_vec(),
            };
            let (sent, _) = challenge_and_read("wampcra", extra)?;
            Ok(if wampcra::verify(&key, &challenge, &sent) {
                Ok(json!({}))
            } else {
                Err("wrong signature".into())
            })
        }
        "cryptosign" => {
            let offered = details["authextra"]["pubkey"].as_str().unwrap_or("");
            if offered != p.cryptosign_public {
                return denied("unknown public key");
            }
            let public = cryptosign::parse_public_key(offered).unwrap();
            let challenge: Vec<u8> = (0..32).map(|i| (session as u8) ^ i).collect();
            let (sent, _) = challenge_and_read(
                "cryptosign",
                json!({"challenge": hex::encode(&challenge), "channel_binding": null}),
            )?;
            Ok(if cryptosign::verify(&public, &challenge, &sent) {
                Ok(json!({}))
            } else {
                Err("wrong signature".into())
            })
        }
        "wamp-scram" | "scram" => {
            let (id, password, kdf, challenge_name) = p.scram;
            if authid != id {
                return denied("unknown authid");
            }
            let Some(client_nonce) = details["authextra"]["nonce"].as_str() else {
                return denied("no client nonce");
            };
            let salt = b"mock-router-salt";
            let credential = scram::derive(password, salt, kdf).unwrap();
            let nonce = format!("{client_nonce}c2VydmVyLW5vbmNl{session}");
            let salt_text = credentials::base64_encode(salt);
            let (memory, iterations) = match kdf {
                scram::Kdf::Argon2id13 { memory, iterations } => (memory, iterations),
                scram::Kdf::Pbkdf2 { iterations } => (0, iterations),
            };
            let (sent, extra) = challenge_and_read(
                challenge_name,
                json!({"nonce": nonce, "salt": salt_text, "kdf": kdf.name(),
                    "iterations": iterations, "memory": memory}),
            )?;
            if extra["nonce"].as_str() != Some(nonce.as_str()) {
                return denied("AUTHENTICATE.Extra.nonce is not the combined nonce");
            }
            let message =
                scram::auth_message(authid, client_nonce, &nonce, &salt_text, iterations, "");
            if !scram::verify_proof(&credential, &message, &sent) {
                return denied("wrong proof");
            }
            let signature = if p.forge_server_signature {
                credentials::base64_encode(&[7u8; 32])
            } else {
                scram::server_signature(&credential.server_key, &message)
            };
            Ok(Ok(json!({"scram_server_signature": signature})))
        }
        _ => denied("no such authmethod"),
    }
}

/// A short connect run with `auth` against the mock: every cycle (and the setup check)
/// authenticated, no error, and the report names the method.
fn connects(router: &MockRouter, auth: &[&str], method: &str) {
    let dir = tempfile::tempdir().unwrap();
    let report = run_connect_with_auth(&router.url(), auth, dir.path());
    let (sent, ok, errors) = (
        count(&report, "sent"),
        count(&report, "ok"),
        count(&report, "errors"),
    );
    assert!(ok > 0, "{report}");
    assert_eq!((sent, errors), (ok, 0), "{report}");
    assert_eq!(report["authmethod"], method, "{report}");
    assert!(router.refused().is_empty(), "{:?}", router.refused());
    assert!(router.welcomed.load(Ordering::Acquire) > ok, "{report}");
}

#[test]
fn ticket_and_anonymous_sessions_connect() {
    let router = MockRouter::start(principals());
    connects(
        &router,
        &[
            "--authmethod",
            "ticket",
            "--authid",
            "joe",
            "--secret",
            "ticket-1",
        ],
        "ticket",
    );
    connects(&router, &["--authmethod", "anonymous"], "anonymous");
}

#[test]
fn wampcra_plain_and_salted_sessions_connect() {
    let router = MockRouter::start(principals());
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), "cra-secret\n").unwrap();
    let path = secret_file.path().to_str().unwrap();
    let flags = [
        "--authmethod",
        "wampcra",
        "--authid",
        "cra",
        "--secret-file",
        path,
    ];
    connects(&router, &flags, "wampcra");
    let mut salted = principals();
    salted.wampcra.2 = Some(("pepper", 1000, 32));
    let router = MockRouter::start(salted);
    connects(&router, &flags, "wampcra");
}

#[test]
fn cryptosign_sessions_connect() {
    let router = MockRouter::start(principals());
    connects(
        &router,
        &["--authmethod", "cryptosign", "--private-key", SEED],
        "cryptosign",
    );
}

#[test]
fn scram_sessions_connect_and_check_the_router() {
    let router = MockRouter::start(principals());
    let flags = [
        "--authmethod",
        "scram",
        "--authid",
        "alice",
        "--secret",
        "pw",
    ];
    connects(&router, &flags, "scram");
    // Crossbar.io's names (HELLO and CHALLENGE `scram`) and argon2id.
    let mut crossbar = principals();
    crossbar.scram.2 = scram::Kdf::Argon2id13 {
        iterations: 2,
        memory: 64,
    };
    crossbar.scram.3 = "scram";
    let router = MockRouter::start(crossbar);
    let mut named = flags.to_vec();
    named.extend(["--hello-authmethod", "scram"]);
    connects(&router, &named, "scram");
    // A router that cannot prove it knows the ServerKey is refused.
    let mut forged = principals();
    forged.forge_server_signature = true;
    let router = MockRouter::start(forged);
    let stderr = connect_with_auth_fails(&router.url(), &flags);
    assert!(stderr.contains("server signature"), "{stderr}");
}

#[test]
fn refused_credentials_fail_setup_naming_the_abort_reason() {
    let router = MockRouter::start(principals());
    for flags in [
        &[
            "--authmethod",
            "ticket",
            "--authid",
            "joe",
            "--secret",
            "nope",
        ][..],
        &[
            "--authmethod",
            "wampcra",
            "--authid",
            "cra",
            "--secret",
            "nope",
        ][..],
        &[
            "--authmethod",
            "cryptosign",
            "--private-key",
            "0101010101010101010101010101010101010101010101010101010101010101",
        ][..],
        &[
            "--authmethod",
            "scram",
            "--authid",
            "alice",
            "--secret",
            "nope",
        ][..],
    ] {
        let stderr = connect_with_auth_fails(&router.url(), flags);
        assert!(
            stderr.contains("authentication failed: router sent ABORT wamp.error.not_authorized"),
            "{flags:?}: {stderr}"
        );
    }
    // Credentials without a method are refused before connecting.
    let stderr = connect_with_auth_fails(&router.url(), &["--authid", "joe"]);
    assert!(stderr.contains("need --authmethod"), "{stderr}");
}
