//! Users and the signed access tokens that identify them.
//!
//! Owns invariant 6 ("nobody acts as someone else") for the access side: the only way to name
//! a user in a request is an HS256 token whose `sub` is the user id, signed with the shared
//! secret, unexpired, and of type `access`.

pub mod pg;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    ids::UserId,
    tokens::{now_secs, Signer, Verified},
    Error, Result,
};

/// A display name, 1 to 100 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    /// Longest accepted name, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Validates a name from a request.
    pub fn parse(raw: &str) -> Result<Self> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.chars().count() > Self::MAX_CHARS {
            return Err(Error::InvalidInput(format!(
                "name must be 1 to {} characters",
                Self::MAX_CHARS
            )));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(Error::InvalidInput(
                "name must not contain control characters".into(),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The validated name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    /// The user id, as a string per RFC 7519.
    sub: String,
    iat: u64,
    exp: u64,
    /// Always `access`; keeps queue tokens from passing as access tokens.
    typ: String,
}

const ACCESS: &str = "access";

/// Issues and verifies access tokens.
#[derive(Debug, Clone)]
pub struct AccessTokens {
    signer: Signer,
    ttl: Duration,
    verified: Verified<UserId>,
}

impl AccessTokens {
    /// Access tokens signed by `signer`, valid for `ttl`.
    pub fn new(signer: Signer, ttl: Duration) -> Self {
        Self {
            signer,
            ttl,
            verified: Verified::new(),
        }
    }

    /// A fresh token for `user`.
    pub fn issue(&self, user: UserId) -> String {
        let iat = now_secs();
        self.signer.sign(&AccessClaims {
            sub: user.to_string(),
            iat,
            exp: iat + self.ttl.as_secs(),
            typ: ACCESS.into(),
        })
    }

    /// The user a token names, if the token is genuine, unexpired and an access token.
    pub fn verify(&self, token: &str) -> Result<UserId> {
        if let Some(user) = self.verified.get(token, now_secs()) {
            return Ok(user);
        }
        let claims: AccessClaims = self.signer.verify(token).map_err(|_| Error::Unauthorized)?;
        if claims.typ != ACCESS {
            return Err(Error::Unauthorized);
        }
        let user = claims
            .sub
            .parse()
            .map(UserId::new)
            .map_err(|_| Error::Unauthorized)?;
        self.verified.insert(token, user, claims.exp);
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(UserName::parse("  kim ").unwrap().as_str(), "kim");
        assert!(UserName::parse("   ").is_err());
        assert!(UserName::parse(&"x".repeat(101)).is_err());
        assert!(UserName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn an_issued_token_names_its_user() {
        let tokens = AccessTokens::new(Signer::new(b"s"), Duration::from_secs(60));
        assert_eq!(
            tokens.verify(&tokens.issue(UserId::new(42))).unwrap(),
            UserId::new(42)
        );
    }

    #[test]
    fn a_token_of_another_type_is_not_an_access_token() {
        #[derive(Serialize)]
        struct Other {
            sub: String,
            exp: u64,
            typ: String,
        }
        let signer = Signer::new(b"s");
        let token = signer.sign(&Other {
            sub: "1".into(),
            exp: now_secs() + 60,
            typ: "queue".into(),
        });
        let tokens = AccessTokens::new(signer, Duration::from_secs(60));
        assert!(matches!(tokens.verify(&token), Err(Error::Unauthorized)));
    }
}
