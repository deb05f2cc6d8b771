//! Queue tokens: the signed proof of a place in a concert's line, and of admission.
//!
//! A WAITING token names the user, the concert and the place; an ACTIVE token adds when the
//! user was admitted and expires when the session does. Tokens are bound to user and concert,
//! so a token shown with another user's access token, or for another concert, is refused.
//! Verifying one is a signature check: no Redis round trip.

use serde::{Deserialize, Serialize};

use crate::{
    concerts::ConcertId,
    identity::UserId,
    tokens::{now_secs, Rejected, Signer},
    Error, Result,
};

/// How long a WAITING token stays valid. A line for a star's concert can take hours; a day
/// covers any on-sale, and the place itself lives in Redis, not in the token.
const WAITING_TTL_SECS: u64 = 24 * 3600;

const QUEUE: &str = "queue";

/// Where a token holder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QueueStatus {
    Waiting,
    Active,
}

/// The claims of a queue token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueClaims {
    /// User id.
    pub sub: String,
    /// Concert id.
    pub cid: i64,
    /// Place in line (1-based), as handed out by the join script.
    pub place: i64,
    /// WAITING or ACTIVE.
    pub st: QueueStatus,
    /// Epoch ms of admission (ACTIVE only): sessions ended at or after it are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adm: Option<i64>,
    pub iat: u64,
    /// Expiry in epoch seconds; for ACTIVE tokens, the end of the session.
    pub exp: u64,
    /// Always `queue`.
    pub typ: String,
}

/// A verified queue token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePass {
    pub user: UserId,
    pub concert: ConcertId,
    pub place: i64,
    pub status: QueueStatus,
    /// Epoch ms of admission, for ACTIVE passes.
    pub admitted_at_ms: Option<i64>,
    /// Epoch seconds the token expires (the session end for ACTIVE).
    pub expires_at: u64,
}

/// Issues and verifies queue tokens.
#[derive(Debug, Clone)]
pub struct QueueTokens {
    signer: Signer,
}

impl QueueTokens {
    /// Queue tokens signed by `signer`.
    pub fn new(signer: Signer) -> Self {
        Self { signer }
    }

    /// A token proving `user` holds `place` in `concert`'s line.
    pub fn issue_waiting(&self, user: UserId, concert: ConcertId, place: i64) -> String {
        let iat = now_secs();
        self.signer.sign(&QueueClaims {
            sub: user.to_string(),
            cid: concert.get(),
            place,
            st: QueueStatus::Waiting,
            adm: None,
            iat,
            exp: iat + WAITING_TTL_SECS,
            typ: QUEUE.into(),
        })
    }

    /// A token proving `user` was admitted at `admitted_at_ms` with a session ending at
    /// `active_until_ms`.
    pub fn issue_active(
        &self,
        user: UserId,
        concert: ConcertId,
        place: i64,
        admitted_at_ms: i64,
        active_until_ms: i64,
    ) -> String {
        self.signer.sign(&QueueClaims {
            sub: user.to_string(),
            cid: concert.get(),
            place,
            st: QueueStatus::Active,
            adm: Some(admitted_at_ms),
            iat: now_secs(),
            exp: u64::try_from(active_until_ms / 1000).unwrap_or(0),
            typ: QUEUE.into(),
        })
    }

    /// Verifies `token` and checks it belongs to `user`. An unreadable, forged or expired
    /// token is `InvalidQueueToken` (401); a genuine token of another user is
    /// `QueueTokenMismatch` (403).
    pub fn verify(&self, token: &str, user: UserId) -> Result<QueuePass> {
        let claims: QueueClaims = self.signer.verify(token).map_err(|e| match e {
            Rejected::Malformed | Rejected::Expired => Error::InvalidQueueToken,
        })?;
        if claims.typ != QUEUE {
            return Err(Error::InvalidQueueToken);
        }
        let owner: i64 = claims.sub.parse().map_err(|_| Error::InvalidQueueToken)?;
        if owner != user.get() {
            return Err(Error::QueueTokenMismatch);
        }
        Ok(QueuePass {
            user,
            concert: ConcertId::new(claims.cid),
            place: claims.place,
            status: claims.st,
            admitted_at_ms: claims.adm,
            expires_at: claims.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> QueueTokens {
        QueueTokens::new(Signer::new(b"queue-secret"))
    }

    #[test]
    fn a_waiting_token_names_user_concert_and_place() {
        let t = tokens();
        let pass = t
            .verify(
                &t.issue_waiting(UserId::new(5), ConcertId::new(9), 12),
                UserId::new(5),
            )
            .unwrap();
        assert_eq!(
            (pass.concert, pass.place, pass.status),
            (ConcertId::new(9), 12, QueueStatus::Waiting)
        );
    }

    #[test]
    fn another_users_token_is_a_mismatch() {
        let t = tokens();
        let token = t.issue_waiting(UserId::new(5), ConcertId::new(9), 12);
        assert!(matches!(
            t.verify(&token, UserId::new(6)),
            Err(Error::QueueTokenMismatch)
        ));
    }

    #[test]
    fn an_expired_active_token_is_invalid() {
        let t = tokens();
        let past = crate::now_ms() - 10_000;
        let token = t.issue_active(UserId::new(5), ConcertId::new(9), 1, past - 1000, past);
        assert!(matches!(
            t.verify(&token, UserId::new(5)),
            Err(Error::InvalidQueueToken)
        ));
    }

    #[test]
    fn an_access_token_is_not_a_queue_token() {
        let signer = Signer::new(b"queue-secret");
        let access =
            crate::identity::AccessTokens::new(signer.clone(), std::time::Duration::from_secs(60));
        let token = access.issue(UserId::new(5));
        assert!(matches!(
            QueueTokens::new(signer).verify(&token, UserId::new(5)),
            Err(Error::InvalidQueueToken)
        ));
    }
}
