//! TLS as a sans-IO byte filter between a socket and the WebSocket/RawSocket state machine
//! ([`TlsFilter`]), server side (the router's listeners) and client side (the load generator),
//! over rustls. Plain calls, no I/O: feed the ciphertext read from the socket and take the
//! decrypted plaintext out of it in the same call ([`TlsFilter::receive`]); hand it plaintext
//! to encrypt ([`TlsFilter::send`]) and take the ciphertext to write ([`TlsFilter::ciphertext`],
//! [`TlsFilter::consume_ciphertext`]). It knows nothing of WAMP, WebSocket or sockets.
//!
//! Bounds: rustls keeps at most 16 KiB of decrypted plaintext (drained into the caller on
//! every [`TlsFilter::receive`]) and [`RUSTLS_BUFFER_LIMIT`] of unsent records; this filter
//! keeps at most [`MAX_PENDING_CIPHERTEXT`] (plus one record batch) of ciphertext for the
//! socket, and takes no plaintext while that is full, so the caller's own bounded queue keeps
//! the rest. Every error (bad record, failed handshake, untrusted certificate) is a
//! [`TlsError`]: the caller flushes what is queued (rustls queues the alert) and closes.
//!
//! Also here: loading a listener's certificate and key from PEM files
//! ([`load_server_config`]) and building the client configuration ([`client_config`]), with
//! errors that say which file and what is wrong, never what a key contains.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, Connection, DigitallySignedStruct, RootCertStore, ServerConfig,
    ServerConnection, SignatureScheme,
};

/// Ciphertext waiting for the socket at which [`TlsFilter::send`] takes no more plaintext.
pub const MAX_PENDING_CIPHERTEXT: usize = 256 * 1024;

/// rustls's bound on its own unsent data (plaintext queued before the handshake completes,
/// and encrypted records not yet taken out). Records are moved out after every call, so this
/// only limits how much one [`TlsFilter::send`] encrypts.
pub const RUSTLS_BUFFER_LIMIT: usize = 64 * 1024;

/// Plaintext taken out of rustls per copy into the caller (rustls holds at most 16 KiB).
const PLAINTEXT_CHUNK: usize = 16 * 1024;

/// Why the TLS session failed. The text is safe to log: it names the TLS problem only.
#[derive(Debug)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// What one [`TlsFilter::receive`] did besides delivering plaintext.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// The peer sent close_notify: no more plaintext will come.
    pub peer_closed: bool,
}

/// One TLS session, server or client side. See the module text.
pub struct TlsFilter {
    conn: Connection,
    /// Ciphertext for the socket, oldest first.
    out: BytesMut,
    /// close_notify was queued.
    closing: bool,
    peer_closed: bool,
    /// Bytes counted through the filter: ciphertext in, plaintext out to the caller,
    /// plaintext in from the caller, ciphertext out to the socket.
    pub counters: TlsCounters,
}

/// Byte counts of one filter.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsCounters {
    pub ciphertext_received: u64,
    pub plaintext_delivered: u64,
    pub plaintext_taken: u64,
    pub ciphertext_written: u64,
}

impl TlsFilter {
    /// The server side of one accepted connection.
    pub fn server(config: Arc<ServerConfig>) -> Result<TlsFilter, TlsError> {
        let conn = ServerConnection::new(config).map_err(|e| TlsError(e.to_string()))?;
        Ok(TlsFilter::new(Connection::Server(conn)))
    }

    /// The client side of one connection to `server_name` (SNI and certificate check).
    pub fn client(
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> Result<TlsFilter, TlsError> {
        let conn =
            ClientConnection::new(config, server_name).map_err(|e| TlsError(e.to_string()))?;
        let mut filter = TlsFilter::new(Connection::Client(conn));
        // The ClientHello is ready at once.
        filter.take_records();
        Ok(filter)
    }

    fn new(mut conn: Connection) -> TlsFilter {
        conn.set_buffer_limit(Some(RUSTLS_BUFFER_LIMIT));
        TlsFilter {
            conn,
            out: BytesMut::with_capacity(4096),
            closing: false,
            peer_closed: false,
            counters: TlsCounters::default(),
        }
    }

    /// Feeds ciphertext read from the socket; every byte of plaintext it decrypts to is handed
    /// to `deliver` (in order, possibly in several pieces) before this returns. After an error
    /// the session is over: flush [`TlsFilter::ciphertext`] (it may hold an alert) and close.
    pub fn receive(
        &mut self,
        mut ciphertext: &[u8],
        mut deliver: impl FnMut(&[u8]),
    ) -> Result<Received, TlsError> {
        self.counters.ciphertext_received += ciphertext.len() as u64;
        let result = loop {
            if let Err(e) = self.drain_plaintext(&mut deliver) {
                break Err(e);
            }
            // An empty read would tell rustls the socket reached EOF; and after close_notify
            // nothing more is read.
            if ciphertext.is_empty() || self.peer_closed {
                break Ok(());
            }
            match self.conn.read_tls(&mut ciphertext) {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(TlsError(format!("TLS input refused: {e}"))),
            }
            if let Err(e) = self.conn.process_new_packets() {
                break Err(TlsError(format!("TLS error: {e}")));
            }
        };
        // Handshake messages, alerts, session tickets: whatever rustls wants to send now.
        self.take_records();
        result.map(|()| Received {
            peer_closed: self.peer_closed,
        })
    }

    fn drain_plaintext(&mut self, deliver: &mut impl FnMut(&[u8])) -> Result<(), TlsError> {
        let mut chunk = [0u8; PLAINTEXT_CHUNK];
        loop {
            match self.conn.reader().read(&mut chunk) {
                Ok(0) => {
                    self.peer_closed = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.counters.plaintext_delivered += n as u64;
                    deliver(&chunk[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(TlsError(format!("TLS read failed: {e}"))),
            }
        }
    }

    /// Encrypts a prefix of `plaintext` and returns its length: all of it unless the pending
    /// ciphertext is at its bound (then 0) or rustls's own buffer fills. Before the handshake
    /// completes, rustls holds the plaintext (bounded) and sends it once it can.
    pub fn send(&mut self, plaintext: &[u8]) -> usize {
        if plaintext.is_empty() || self.closing || self.out.len() >= MAX_PENDING_CIPHERTEXT {
            return 0;
        }
        // Writing into rustls's buffers cannot fail; a full buffer takes fewer bytes.
        let taken = self.conn.writer().write(plaintext).unwrap_or(0);
        self.counters.plaintext_taken += taken as u64;
        self.take_records();
        taken
    }

    /// Queues close_notify (once); nothing more is encrypted afterwards.
    pub fn close(&mut self) {
        if !self.closing {
            self.closing = true;
            self.conn.send_close_notify();
            self.take_records();
        }
    }

    /// Moves every record rustls has ready into `out`.
    fn take_records(&mut self) {
        while self.conn.wants_write() {
            let mut writer = (&mut self.out).writer();
            match self.conn.write_tls(&mut writer) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Ciphertext to write to the socket.
    pub fn ciphertext(&self) -> &[u8] {
        &self.out
    }

    /// The socket took `n` bytes of [`TlsFilter::ciphertext`].
    pub fn consume_ciphertext(&mut self, n: usize) {
        let n = n.min(self.out.len());
        self.counters.ciphertext_written += n as u64;
        self.out.advance(n);
        if self.out.is_empty() && self.out.capacity() > 4 * MAX_PENDING_CIPHERTEXT {
            // A burst grew the buffer: give the memory back.
            self.out = BytesMut::with_capacity(4096);
        }
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The peer sent close_notify.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }
}

/// A problem with a listener's certificate or key file; the config layer names its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsConfigError {
    /// The certificate file is missing, unreadable, or holds no certificate.
    Cert(String),
    /// The key file is missing, unreadable, or holds no private key.
    Key(String),
    /// rustls refused the pair (the key does not match the certificate, unsupported key).
    Pair(String),
}

/// The provider every configuration here uses: ring (no aws-lc, so a C compiler suffices).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate in a PEM file.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        certs.push(cert.map_err(|e| format!("{}: bad PEM: {e}", path.display()))?);
    }
    if certs.is_empty() {
        return Err(format!(
            "{} holds no certificate (expected a PEM \"BEGIN CERTIFICATE\" block)",
            path.display()
        ));
    }
    Ok(certs)
}

/// Builds the server configuration of one listener from a PEM certificate chain (leaf first)
/// and a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_server_config(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let certs = load_certificates(cert_path).map_err(TlsConfigError::Cert)?;
    let pem = std::fs::read(key_path)
        .map_err(|e| TlsConfigError::Key(format!("cannot read {}: {e}", key_path.display())))?;
    // The parser's error text never quotes the key material.
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        TlsConfigError::Key(format!(
            "{} holds no private key (expected a PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" block)",
            key_path.display()
        ))
    })?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::Pair(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            TlsConfigError::Pair(format!(
                "the key in {} does not fit the certificate in {}: {e}",
                key_path.display(),
                cert_path.display()
            ))
        })?;
    Ok(Arc::new(config))
}

/// How a client checks the server's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerTrust {
    /// Trust the certificates in this PEM file (a CA, or the server's self-signed one).
    CaFile(std::path::PathBuf),
    /// Accept any certificate (benchmarks against a test certificate only): the handshake
    /// signatures are still checked, the chain and name are not.
    Insecure,
}

/// The client configuration for `trust`.
pub fn client_config(trust: &ServerTrust) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match trust {
        ServerTrust::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        ServerTrust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The server name a client presents (SNI) and checks the certificate against: a DNS name or
/// an IP address literal.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("`{host}`: not a TLS server name: {e}"))
}

/// `ServerTrust::Insecure`: any chain, any name; handshake signatures still verified.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        /// A self-signed certificate for 127.0.0.1 and localhost, as cert.pem and key.pem.
        fn new() -> Pki {
            let dir = tempfile::tempdir().unwrap();
            let certified =
                rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
                    .unwrap();
            std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).unwrap();
            std::fs::write(
                dir.path().join("key.pem"),
                certified.key_pair.serialize_pem(),
            )
            .unwrap();
            Pki { dir }
        }

        fn path(&self, name: &str) -> std::path::PathBuf {
            self.dir.path().join(name)
        }

        fn server(&self) -> TlsFilter {
            let config = load_server_config(&self.path("cert.pem"), &self.path("key.pem")).unwrap();
            TlsFilter::server(config).unwrap()
        }

        fn client(&self, host: &str) -> TlsFilter {
            let config = client_config(&ServerTrust::CaFile(self.path("cert.pem"))).unwrap();
            TlsFilter::client(config, server_name(host).unwrap()).unwrap()
        }
    }

    /// Moves ciphertext both ways until neither side has any; returns the plaintext each
    /// side received (server's, client's), or the first error.
    fn shuttle(
        server: &mut TlsFilter,
        client: &mut TlsFilter,
    ) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
        let (mut at_server, mut at_client) = (Vec::new(), Vec::new());
        for _ in 0..1000 {
            let to_server = client.ciphertext().to_vec();
            client.consume_ciphertext(to_server.len());
            server.receive(&to_server, |p| at_server.extend_from_slice(p))?;
            let to_client = server.ciphertext().to_vec();
            server.consume_ciphertext(to_client.len());
            client.receive(&to_client, |p| at_client.extend_from_slice(p))?;
            if to_server.is_empty() && to_client.is_empty() {
                return Ok((at_server, at_client));
            }
        }
        panic!("the filters kept talking")
    }

    #[test]
    fn server_and_client_filters_exchange_plaintext_both_ways() {
        let pki = Pki::new();
        let (mut server, mut client) = (pki.server(), pki.client("127.0.0.1"));
        assert!(client.is_handshaking());
        // Queued before the handshake: rustls holds it and sends it when it can.
        assert_eq!(client.send(b"hello router"), 12);
        let (at_server, _) = shuttle(&mut server, &mut client).unwrap();
        assert_eq!(at_server, b"hello router");
        assert!(!server.is_handshaking() && !client.is_handshaking());

        // A large message, in one piece, arrives whole and in order.
        let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let mut sent = 0;
        let mut at_client = Vec::new();
        for _ in 0..1000 {
            if sent == big.len() {
                break;
            }
            sent += server.send(&big[sent..]);
            assert!(server.ciphertext().len() <= MAX_PENDING_CIPHERTEXT + 2 * RUSTLS_BUFFER_LIMIT);
            let (_, got) = shuttle(&mut server, &mut client).unwrap();
            at_client.extend_from_slice(&got);
        }
        assert_eq!(at_client, big);
        assert_eq!(server.counters.plaintext_taken, big.len() as u64);
        assert_eq!(client.counters.plaintext_delivered, big.len() as u64);

        // close_notify reaches the other side.
        client.close();
        assert_eq!(client.send(b"late"), 0, "nothing is encrypted after close");
        shuttle(&mut server, &mut client).unwrap();
        assert!(server.peer_closed());
    }

    #[test]
    fn the_ciphertext_bound_stops_taking_plaintext() {
        let pki = Pki::new();
        let (mut server, mut client) = (pki.server(), pki.client("localhost"));
        shuttle(&mut server, &mut client).unwrap();
        let chunk = vec![7u8; 32 * 1024];
        let mut taken = 0;
        for _ in 0..100 {
            taken += server.send(&chunk);
        }
        assert!(server.ciphertext().len() >= MAX_PENDING_CIPHERTEXT);
        assert!(taken < 100 * chunk.len());
        assert_eq!(server.send(&chunk), 0);
    }

    #[test]
    fn an_untrusted_certificate_or_wrong_name_fails_the_client_handshake() {
        let (pki, other) = (Pki::new(), Pki::new());
        let mut server = pki.server();
        let mut client = other.client("127.0.0.1");
        let error = shuttle(&mut server, &mut client).unwrap_err();
        assert!(error.0.contains("certificate"), "{error}");

        let mut server = pki.server();
        let mut client = pki.client("example.com");
        let error = shuttle(&mut server, &mut client).unwrap_err();
        assert!(error.0.contains("certificate"), "{error}");

        // Insecure trusts anything.
        let mut server = pki.server();
        let config = client_config(&ServerTrust::Insecure).unwrap();
        let mut client = TlsFilter::client(config, server_name("example.com").unwrap()).unwrap();
        shuttle(&mut server, &mut client).unwrap();
        assert!(!client.is_handshaking());
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let pki = Pki::new();
        let inputs: [&[u8]; 4] = [
            b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n",
            &[0x7f, 0x00, 0x00, 0x00],
            &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01],
            &[0x17; 64],
        ];
        for input in inputs {
            let mut server = pki.server();
            let mut delivered = 0;
            // One byte at a time, then the rest: either way an error, or a wait for more.
            let mut failed = false;
            for byte in input {
                if server.receive(&[*byte], |p| delivered += p.len()).is_err() {
                    failed = true;
                    break;
                }
            }
            assert_eq!(delivered, 0);
            if failed {
                // The alert may be queued for the peer; it is bounded.
                assert!(server.ciphertext().len() < 1024);
            }
        }
        let mut server = pki.server();
        assert!(server.receive(b"GET / HTTP/1.1\r\n\r\n", |_| {}).is_err());
    }

    #[test]
    fn bad_files_are_named() {
        let pki = Pki::new();
        let missing = pki.path("nope.pem");
        match load_server_config(&missing, &pki.path("key.pem")) {
            Err(TlsConfigError::Cert(text)) => assert!(text.contains("nope.pem"), "{text}"),
            other => panic!("{other:?}"),
        }
        // The key file holds no certificate, and the certificate file no key.
        match load_server_config(&pki.path("key.pem"), &pki.path("key.pem")) {
            Err(TlsConfigError::Cert(text)) => assert!(text.contains("no certificate"), "{text}"),
            other => panic!("{other:?}"),
        }
        match load_server_config(&pki.path("cert.pem"), &pki.path("cert.pem")) {
            Err(TlsConfigError::Key(text)) => assert!(text.contains("no private key"), "{text}"),
            other => panic!("{other:?}"),
        }
        let other = Pki::new();
        match load_server_config(&pki.path("cert.pem"), &other.path("key.pem")) {
            Err(TlsConfigError::Pair(text)) => assert!(text.contains("does not fit"), "{text}"),
            other => panic!("{other:?}"),
        }
        assert!(client_config(&ServerTrust::CaFile(missing)).is_err());
    }
}
