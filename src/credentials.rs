//! The cryptography of WAMP authentication (digest §11), for both ends of it: what the router
//! checks (ticket hashes, WAMP-CRA signatures, Cryptosign signatures, WAMP-SCRAM proofs), what a
//! client computes (`wampring-load`, the tests), and what `wampring auth` makes for a config file
//! (argon2id ticket hashes, salted WAMP-CRA keys, SCRAM stored and server keys, Ed25519 key
//! pairs). Pure functions over the RustCrypto crates, no I/O; every comparison of secret
//! material is constant-time. The byte-level choices follow Autobahn and Crossbar.io where the
//! spec is silent (noted at each), since those are the clients and routers users pair us with.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `message` under `key` (any key length is valid for HMAC).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Decodes standard base64 with or without padding (clients differ).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .ok()
}

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// `ticket`: the client sends the ticket itself; the router keeps it as an argon2id hash (or,
/// if the operator chose so, in the clear).
pub mod ticket {
    use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
    use argon2::Argon2;
    use std::sync::OnceLock;
    use subtle::ConstantTimeEq;

    /// An argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) of `ticket`, with
    /// the argon2 crate's default cost (OWASP's recommendation) and a random salt.
    pub fn hash(ticket: &str) -> String {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(ticket.as_bytes(), &salt)
            .expect("default argon2 parameters are valid")
            .to_string()
    }

    /// Whether `phc` is a PHC string argon2 can verify against (checked when the config loads).
    pub fn is_valid_hash(phc: &str) -> Result<(), String> {
        let parsed = PasswordHash::new(phc).map_err(|e| e.to_string())?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(format!(
                "the hash is {}, not argon2id",
                parsed.algorithm.as_str()
            ));
        }
        if parsed.hash.is_none() {
            return Err("the PHC string holds no hash".into());
        }
        Ok(())
    }

    /// Whether `ticket` hashes to `phc`. A `phc` that does not parse verifies nothing.
    pub fn verify(ticket: &str, phc: &str) -> bool {
        match PasswordHash::new(phc) {
            Ok(parsed) => Argon2::default()
                .verify_password(ticket.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// A hash nobody knows the ticket of: an unknown authid is checked against it, so that it
    /// costs what a known one costs and answers the same.
    pub fn decoy_hash() -> &'static str {
        static DECOY: OnceLock<String> = OnceLock::new();
        DECOY.get_or_init(|| {
            let mut secret = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
            hash(&hex::encode(secret))
        })
    }

    /// Constant-time equality of a sent ticket with one kept in the clear.
    pub fn equals_plain(sent: &str, kept: &str) -> bool {
        sent.len() == kept.len() && bool::from(sent.as_bytes().ct_eq(kept.as_bytes()))
    }
}

/// `wampcra`: an HMAC-SHA256 over the challenge string, keyed with the secret, or with the base64
/// text of PBKDF2-HMAC-SHA256(secret, salt) for salted principals (Autobahn's `derive_key`).
pub mod wampcra {
    use super::{base64_decode, base64_encode, hmac_sha256};
    use subtle::ConstantTimeEq;

    /// PBKDF2 iterations and key length a salted key is made with when not told otherwise
    /// (Crossbar.io's and Autobahn's defaults).
    pub const DEFAULT_ITERATIONS: u32 = 1000;
    pub const DEFAULT_KEYLEN: u32 = 32;

    /// The salted WAMP-CRA key: base64 (padded) of PBKDF2-HMAC-SHA256 over the UTF-8 bytes of
    /// `secret` and `salt`. The HMAC key is this text's bytes, not the raw PBKDF2 output.
    pub fn derive_key(secret: &str, salt: &str, iterations: u32, keylen: u32) -> String {
        let mut key = vec![0u8; keylen as usize];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
            secret.as_bytes(),
            salt.as_bytes(),
            iterations,
            &mut key,
        );
        base64_encode(&key)
    }

    /// The signature a client sends in AUTHENTICATE: base64 of HMAC-SHA256(key, challenge).
    pub fn sign(key: &[u8], challenge: &str) -> String {
        base64_encode(&hmac_sha256(key, challenge.as_bytes()))
    }

    /// Whether `signature` (base64) is `challenge` signed with `key`.
    pub fn verify(key: &[u8], challenge: &str, signature: &str) -> bool {
        let expected = hmac_sha256(key, challenge.as_bytes());
        match base64_decode(signature.trim()) {
            Some(sent) => sent.len() == expected.len() && bool::from(sent.ct_eq(&expected)),
            None => false,
        }
    }
}

/// `cryptosign`: the client proves it holds the Ed25519 key whose public half the router knows,
/// by signing 32 random bytes of the router's.
pub mod cryptosign {
    use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

    /// Bytes of the challenge the router sends (hex in `CHALLENGE.Extra.challenge`).
    pub const CHALLENGE_LEN: usize = 32;

    /// A new key pair, as (private key, public key), each 32 bytes in hex.
    pub fn generate() -> (String, String) {
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        (
            hex::encode(signing.to_bytes()),
            hex::encode(signing.verifying_key().to_bytes()),
        )
    }

    /// A public key from its hex text (64 hex digits of a valid Ed25519 point).
    pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
        let bytes: [u8; 32] = hex::decode(text.trim())
            .map_err(|e| format!("not hex: {e}"))?
            .try_into()
            .map_err(|bytes: Vec<u8>| format!("{} bytes, not 32", bytes.len()))?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| "not an Ed25519 public key".to_string())
    }

    /// A private key (seed) from its hex text: 64 hex digits.
    pub fn parse_private_key(text: &str) -> Result<SigningKey, String> {
        let bytes: [u8; 32] = hex::decode(text.trim())
            .map_err(|e| format!("not hex: {e}"))?
            .try_into()
            .map_err(|bytes: Vec<u8>| format!("{} bytes, not 32", bytes.len()))?;
        Ok(SigningKey::from_bytes(&bytes))
    }

    /// The public key of a private one, in hex.
    pub fn public_key_of(private: &SigningKey) -> String {
        hex::encode(private.verifying_key().to_bytes())
    }

    /// What a client sends in AUTHENTICATE: hex of the 64-byte signature of `challenge`
    /// followed by `challenge` itself (Autobahn's form, 192 hex digits).
    pub fn sign(private: &SigningKey, challenge: &[u8]) -> String {
        let signature = private.sign(challenge);
        let mut sent = signature.to_bytes().to_vec();
        sent.extend_from_slice(challenge);
        hex::encode(sent)
    }

    /// Whether `sent` (hex) signs `challenge` with `public`. Both forms clients use are
    /// accepted: the 64-byte signature alone, or followed by the challenge it signed (which
    /// must then be this one).
    pub fn verify(public: &VerifyingKey, challenge: &[u8], sent: &str) -> bool {
        let Ok(bytes) = hex::decode(sent.trim()) else {
            return false;
        };
        let (signature, signed) = match bytes.len() {
            64 => (&bytes[..], challenge),
            n if n == 64 + challenge.len() => (&bytes[..64], &bytes[64..]),
            _ => return false,
        };
        if signed != challenge {
            return false;
        }
        let Ok(signature) = Signature::from_slice(signature) else {
            return false;
        };
        public.verify(challenge, &signature).is_ok()
    }
}

/// `wamp-scram` (RFC 5802 with SHA-256, as WAMP adapts it): the router keeps StoredKey and
/// ServerKey, never the password; the client proves it knows the password, and the router
/// proves it knows ServerKey in WELCOME.
pub mod scram {
    use super::{base64_decode, base64_encode, hmac_sha256, ConstantTimeEq, Digest, Sha256};
    use super::{Engine, STANDARD_NO_PAD};

    /// The key derivation function a credential was made with, and its cost.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Kdf {
        /// Argon2id version 0x13, one lane, `memory` KiB, `iterations` passes.
        Argon2id13 {
            iterations: u32,
            memory: u32,
        },
        Pbkdf2 {
            iterations: u32,
        },
    }

    impl Kdf {
        /// The name in `CHALLENGE.Extra.kdf` (Autobahn's and Crossbar.io's spelling).
        pub fn name(self) -> &'static str {
            match self {
                Kdf::Argon2id13 { .. } => "argon2id-13",
                Kdf::Pbkdf2 { .. } => "pbkdf2",
            }
        }

        pub fn iterations(self) -> u32 {
            match self {
                Kdf::Argon2id13 { iterations, .. } | Kdf::Pbkdf2 { iterations } => iterations,
            }
        }

        /// Autobahn's `derive_scram_credential` cost: 4096 passes over 512 KiB.
        pub const DEFAULT_ARGON2: Kdf = Kdf::Argon2id13 {
            iterations: 4096,
            memory: 512,
        };
    }

    /// What the router keeps of a SCRAM principal.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Credential {
        pub kdf: Kdf,
        pub salt: Vec<u8>,
        pub stored_key: [u8; 32],
        pub server_key: [u8; 32],
    }

    /// SaltedPassword. For argon2id it is the unpadded base64 text of the 32-byte hash, as
    /// Autobahn computes it (argon2-cffi's encoded form); for PBKDF2 the raw 32 bytes.
    pub fn salted_password(password: &str, salt: &[u8], kdf: Kdf) -> Result<Vec<u8>, String> {
        let mut raw = [0u8; 32];
        match kdf {
            Kdf::Argon2id13 { iterations, memory } => {
                let params = argon2::Params::new(memory, iterations, 1, Some(32))
                    .map_err(|e| format!("argon2 parameters: {e}"))?;
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                    .hash_password_into(password.as_bytes(), salt, &mut raw)
                    .map_err(|e| format!("argon2: {e}"))?;
                Ok(STANDARD_NO_PAD.encode(raw).into_bytes())
            }
            Kdf::Pbkdf2 { iterations } => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut raw);
                Ok(raw.to_vec())
            }
        }
    }

    /// The credential a router keeps for `password`.
    pub fn derive(password: &str, salt: &[u8], kdf: Kdf) -> Result<Credential, String> {
        let salted = salted_password(password, salt, kdf)?;
        let client_key = hmac_sha256(&salted, b"Client Key");
        Ok(Credential {
            kdf,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac_sha256(&salted, b"Server Key"),
        })
    }

    /// The AuthMessage both sides sign: client-first-bare, server-first and
    /// client-final-without-proof, comma-joined. `nonce` is the combined (client + server)
    /// nonce; `salt` is the base64 text the CHALLENGE carried.
    pub fn auth_message(
        authid: &str,
        client_nonce: &str,
        nonce: &str,
        salt: &str,
        iterations: u32,
        channel_binding: &str,
    ) -> String {
        format!("n={authid},r={client_nonce},r={nonce},s={salt},i={iterations},c={channel_binding},r={nonce}")
    }

    /// Whether `proof` (base64 ClientProof) shows knowledge of the password behind `credential`:
    /// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage) must hash to StoredKey.
    pub fn verify_proof(credential: &Credential, auth_message: &str, proof: &str) -> bool {
        let Some(proof) = base64_decode(proof.trim()) else {
            return false;
        };
        if proof.len() != 32 {
            return false;
        }
        let signature = hmac_sha256(&credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
        let stored: [u8; 32] = Sha256::digest(&client_key).into();
        bool::from(stored.ct_eq(&credential.stored_key))
    }

    /// ServerSignature (base64), sent in `WELCOME.Details.authextra.scram_server_signature`.
    pub fn server_signature(server_key: &[u8], auth_message: &str) -> String {
        base64_encode(&hmac_sha256(server_key, auth_message.as_bytes()))
    }

    /// The ClientProof (base64) a client sends, from its SaltedPassword.
    pub fn client_proof(salted_password: &[u8], auth_message: &str) -> String {
        let client_key = hmac_sha256(salted_password, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let signature = hmac_sha256(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        base64_encode(&proof)
    }

    /// ServerKey from the client's SaltedPassword, so a client can check the router's
    /// [`server_signature`] without a stored credential.
    pub fn server_key(salted_password: &[u8]) -> [u8; 32] {
        hmac_sha256(salted_password, b"Server Key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_verifies_against_its_own_hash_only() {
        let hash = ticket::hash("s3cret");
        ticket::is_valid_hash(&hash).unwrap();
        assert!(ticket::verify("s3cret", &hash));
        assert!(!ticket::verify("s3cret!", &hash));
        assert!(!ticket::verify("s3cret", ticket::decoy_hash()));
        assert!(!ticket::verify("s3cret", "not a hash"));
        assert!(
            ticket::is_valid_hash("$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo")
                .is_err()
        );
        assert!(ticket::equals_plain("abc", "abc"));
        assert!(!ticket::equals_plain("abc", "abd"));
        assert!(!ticket::equals_plain("abc", "abcd"));
    }

    /// Autobahn|Python 26.10: `derive_key("secret", "salt123", 100, 16)` and `compute_wcs` of
    /// that key over "challenge".
    #[test]
    fn wampcra_keys_and_signatures_match_autobahn() {
        let key = wampcra::derive_key("secret", "salt123", 100, 16);
        assert_eq!(key, "EX1Y3Q9BMM2oGLxsGqDgFQ==");
        let signature = wampcra::sign(key.as_bytes(), "challenge");
        assert_eq!(signature, "gRzitg/CjEE11YgNhAQAOdBddVWD+RkWp7w+mils3wY=");
        assert!(wampcra::verify(key.as_bytes(), "challenge", &signature));
        assert!(!wampcra::verify(key.as_bytes(), "challenge!", &signature));
        assert!(!wampcra::verify(b"other", "challenge", &signature));
        assert!(!wampcra::verify(key.as_bytes(), "challenge", "%%%"));
    }

    #[test]
    fn a_cryptosign_signature_verifies_in_both_forms_and_only_for_its_challenge() {
        let (private, public) = cryptosign::generate();
        let private = cryptosign::parse_private_key(&private).unwrap();
        assert_eq!(cryptosign::public_key_of(&private), public);
        let public = cryptosign::parse_public_key(&public).unwrap();
        let challenge = [7u8; 32];
        let sent = cryptosign::sign(&private, &challenge);
        assert_eq!(sent.len(), 192);
        assert!(cryptosign::verify(&public, &challenge, &sent));
        assert!(cryptosign::verify(&public, &challenge, &sent[..128]));
        assert!(!cryptosign::verify(&public, &[8u8; 32], &sent));
        assert!(!cryptosign::verify(&public, &[8u8; 32], &sent[..128]));
        let (_, other) = cryptosign::generate();
        let other = cryptosign::parse_public_key(&other).unwrap();
        assert!(!cryptosign::verify(&other, &challenge, &sent));
        assert!(!cryptosign::verify(&public, &challenge, "zz"));
        assert!(cryptosign::parse_public_key("00").is_err());
    }

    /// Autobahn|Python 26.10 `derive_scram_credential("alice@example.com", "pw")` (salt =
    /// SHA256(email)[:16], argon2id-13, t=4096, m=512), and its client proof for one AuthMessage.
    #[test]
    fn scram_credentials_and_proofs_match_autobahn() {
        let salt = &Sha256::digest(b"alice@example.com")[..16];
        let credential = scram::derive("pw", salt, scram::Kdf::DEFAULT_ARGON2).unwrap();
        assert_eq!(
            hex::encode(credential.stored_key),
            "8dca7f3734b168aaf3c73ae96cb8e6605d6103bc919bc99f7a149936e2be78dc"
        );
        assert_eq!(
            hex::encode(credential.server_key),
            "0ce166955de1f2c33313ec2b351825bce91a3c53a9c2d5dfe9c0317229bf725d"
        );
        let salted = scram::salted_password("pw", salt, scram::Kdf::DEFAULT_ARGON2).unwrap();
        assert_eq!(salted, b"L/uI8DKfE+dhvT84R1oLTEAw1J5hJNML9sSAbQtHRws");
        let message = scram::auth_message("alice", "cn", "cnsn", &base64_encode(salt), 4096, "");
        let proof = scram::client_proof(&salted, &message);
        assert!(scram::verify_proof(&credential, &message, &proof));
        assert!(!scram::verify_proof(
            &credential,
            &format!("{message}x"),
            &proof
        ));
        let wrong = scram::salted_password("pw2", salt, scram::Kdf::DEFAULT_ARGON2).unwrap();
        assert!(!scram::verify_proof(
            &credential,
            &message,
            &scram::client_proof(&wrong, &message)
        ));
        let pbkdf2 = scram::Kdf::Pbkdf2 { iterations: 10 };
        let credential = scram::derive("pw", salt, pbkdf2).unwrap();
        let salted = scram::salted_password("pw", salt, pbkdf2).unwrap();
        assert!(scram::verify_proof(
            &credential,
            &message,
            &scram::client_proof(&salted, &message)
        ));
    }
}
