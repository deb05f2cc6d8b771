//! HS256 signing shared by access tokens ([`crate::identity`]) and queue tokens
//! ([`crate::queue`]).
//!
//! The algorithm is pinned: a token whose header says anything but `HS256` (including `none`)
//! is rejected before its signature is looked at, and `exp` is required and enforced with no
//! leeway. Each token kind carries a `typ` claim so that a queue token can never pass as an
//! access token or the other way round.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{de::DeserializeOwned, Serialize};

/// Signs and verifies compact JWS tokens with one shared secret.
#[derive(Clone)]
pub struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    header: Header,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(HS256, <secret>)")
    }
}

/// Why a token was refused. Callers map every case to their own contract error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    Malformed,
    Expired,
}

impl Signer {
    /// A signer over `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            header: Header::new(Algorithm::HS256),
        }
    }

    /// Signs `claims`. Serialising a plain claims struct cannot fail, so a failure is a bug.
    pub fn sign<C: Serialize>(&self, claims: &C) -> String {
        jsonwebtoken::encode(&self.header, claims, &self.encoding)
            .expect("claims structs always serialise")
    }

    /// Verifies signature, algorithm and expiry, and returns the claims.
    pub fn verify<C: DeserializeOwned>(&self, token: &str) -> Result<C, Rejected> {
        jsonwebtoken::decode::<C>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Rejected::Expired,
                _ => Rejected::Malformed,
            })
    }
}

/// Tokens this process has verified, with what they said, so a client that sends the same
/// token on every request pays for the signature and the JSON once: on the hold path the two
/// tokens' checks cost ~3.4 us of a ~40 us request, and a hit a hash of the token.
///
/// A hit means these exact bytes passed [`Signer::verify`] and the checks of the caller that
/// stored them; expiry is checked again on every hit, as `verify` checks it (a token is valid
/// through the second `exp`). Bounded by count: when full it is emptied, and tokens verify
/// afresh (a moka cache evicted more cleverly but cost more per hit than the check it saved
/// on a hold). Nothing can be revoked from it, as nothing could revoke a signed token.
/// Clones share one memo.
pub struct Verified<T> {
    entries: Arc<Mutex<Remembered<T>>>,
}

/// Each remembered token's value and `exp`.
type Remembered<T> = HashMap<Box<str>, (T, u64)>;

impl<T> Clone for Verified<T> {
    fn clone(&self) -> Self {
        Self {
            entries: Arc::clone(&self.entries),
        }
    }
}

impl<T: Clone> Verified<T> {
    /// Tokens remembered per kind: an on-sale's active buyers on one replica, ~200 bytes each.
    const CAPACITY: usize = 100_000;

    pub fn new() -> Self {
        Self {
            entries: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// What `token` said when it was verified, if it was and `now_secs` is not past its `exp`.
    pub fn get(&self, token: &str, now_secs: u64) -> Option<T> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (value, exp) = entries.get(token)?;
        (now_secs <= *exp).then(|| value.clone())
    }

    /// Remembers a token that passed every check, with its `exp`.
    pub fn insert(&self, token: &str, value: T, exp: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= Self::CAPACITY {
            entries.clear();
        }
        entries.insert(token.into(), (value, exp));
    }
}

impl<T: Clone> Default for Verified<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for Verified<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verified(<tokens>)")
    }
}

/// Seconds since the Unix epoch, as JWT `exp` and `iat` want them.
pub fn now_secs() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Claims {
        sub: String,
        exp: u64,
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "7".into(),
            exp,
        }
    }

    #[test]
    fn a_signed_token_verifies_with_the_same_secret() {
        let signer = Signer::new(b"secret-one");
        let token = signer.sign(&claims(now_secs() + 60));
        assert_eq!(
            signer.verify::<Claims>(&token).unwrap(),
            claims(now_secs() + 60)
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_is_rejected() {
        let token = Signer::new(b"secret-one").sign(&claims(now_secs() + 60));
        assert_eq!(
            Signer::new(b"secret-two").verify::<Claims>(&token),
            Err(Rejected::Malformed)
        );
    }

    #[test]
    fn an_expired_token_is_rejected() {
        let signer = Signer::new(b"secret-one");
        let token = signer.sign(&claims(now_secs() - 1));
        assert_eq!(signer.verify::<Claims>(&token), Err(Rejected::Expired));
    }

    #[test]
    fn alg_none_is_rejected() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"7","exp":{}}}"#, now_secs() + 60));
        let token = format!("{header}.{body}.");
        assert!(Signer::new(b"secret-one").verify::<Claims>(&token).is_err());
    }

    #[test]
    fn a_remembered_token_is_given_back_only_for_its_exact_bytes_and_until_its_exp() {
        let verified = Verified::new();
        verified.insert("header.body.signature", 7_i64, 1_000);
        assert_eq!(verified.get("header.body.signature", 999), Some(7));
        assert_eq!(verified.get("header.body.signature", 1_000), Some(7));
        assert_eq!(
            verified.get("header.body.signature", 1_001),
            None,
            "expired"
        );
        assert_eq!(verified.get("header.body.signaturE", 999), None);
        assert_eq!(verified.get("header.bodY.signature", 999), None);
    }

    #[test]
    fn a_token_without_exp_is_rejected() {
        #[derive(Serialize)]
        struct NoExp {
            sub: String,
        }
        let signer = Signer::new(b"secret-one");
        let token = signer.sign(&NoExp { sub: "7".into() });
        assert!(signer.verify::<Claims>(&token).is_err());
    }
}
