//! Queue tokens: the signed proof of a place in a concert's line, and of admission.
//!
//! A WAITING token names the user, the concert and the place; an ACTIVE token adds when the
//! user was admitted and expires when the session does. Tokens are bound to user and concert,
//! so a token shown with another user's access token, or for another concert, is refused.
//! Verifying one is a signature check: no Redis round trip.
//!
//! Every token also carries `since`, the Redis-clock millisecond its facts were read (the join
//! for a WAITING token, the admission for an ACTIVE one). A leave, a payment or a skip as
//! abandoned is logged with its own Redis-clock time, and a token whose `since` is not later
//! than the user's last end is spent: that is how every replica refuses it from its cached
//! copy of the log, without a round trip.

use serde::{Deserialize, Serialize};

use crate::{
    ids::{ConcertId, UserId},
    tokens::{now_secs, Rejected, Signer, Verified},
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
    /// Redis-clock epoch ms of the facts this token states (join or admission): an end logged
    /// at or after it spends the token.
    #[serde(default)]
    pub since: i64,
    /// The line's generation when the place was read; the shuffle at opening bumps it, which
    /// tells a poll that the place in an older token may have moved.
    #[serde(default)]
    pub gen: u32,
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
    /// Redis-clock epoch ms of the facts the token states; see the module docs.
    pub since_ms: i64,
    /// The line's generation the place belongs to.
    pub gen: u32,
}

impl QueuePass {
    /// Refuses a token shown on another concert's route (403 QUEUE_TOKEN_MISMATCH).
    pub fn require_concert(&self, concert: ConcertId) -> Result<()> {
        if self.concert == concert {
            Ok(())
        } else {
            Err(Error::QueueTokenMismatch)
        }
    }

    /// For an ACTIVE pass, the epoch ms its session ends: the token stops verifying then
    /// (see [`QueueTokens::issue_active`]).
    pub fn active_until_ms(&self) -> i64 {
        i64::try_from(self.expires_at)
            .unwrap_or(i64::MAX / 1000 - 1)
            .saturating_add(1)
            .saturating_mul(1000)
    }
}

/// Issues and verifies queue tokens.
#[derive(Debug, Clone)]
pub struct QueueTokens {
    signer: Signer,
    /// Genuine queue tokens already seen, as their claims; the owner is checked on every use.
    verified: Verified<QueueClaims>,
}

impl QueueTokens {
    /// Queue tokens signed by `signer`.
    pub fn new(signer: Signer) -> Self {
        Self {
            signer,
            verified: Verified::new(),
        }
    }

    /// A token proving `user` holds `place` (of line generation `gen`) in `concert`'s line, as
    /// read at `since_ms` on the Redis clock.
    pub fn issue_waiting(
        &self,
        user: UserId,
        concert: ConcertId,
        place: i64,
        since_ms: i64,
        gen: u32,
    ) -> String {
        let iat = now_secs();
        self.signer.sign(&QueueClaims {
            sub: user.to_string(),
            cid: concert.get(),
            place,
            st: QueueStatus::Waiting,
            adm: None,
            since: since_ms,
            gen,
            iat,
            exp: iat + WAITING_TTL_SECS,
            typ: QUEUE.into(),
        })
    }

    /// A token proving `user` was admitted at `admitted_at_ms` with a session ending at
    /// `active_until_ms`.
    ///
    /// JWT `exp` is in whole seconds and a token verifies through the whole second `exp`, so
    /// `exp` is the second before the one the session ends in: the token never outlives the
    /// session, and for the whole-second session ends the admitter hands out it ends exactly
    /// with it (which is what keeps "at most maxActive ACTIVE" true of tokens, not just of the
    /// ACTIVE set).
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
            since: admitted_at_ms,
            gen: 0,
            iat: now_secs(),
            exp: u64::try_from(active_until_ms.div_euclid(1000) - 1).unwrap_or(0),
            typ: QUEUE.into(),
        })
    }

    /// Verifies `token` and checks it belongs to `user`. An unreadable, forged or expired
    /// token is `InvalidQueueToken` (401); a genuine token of another user is
    /// `QueueTokenMismatch` (403).
    pub fn verify(&self, token: &str, user: UserId) -> Result<QueuePass> {
        let claims = match self.verified.get(token, now_secs()) {
            Some(claims) => claims,
            None => {
                let claims: QueueClaims = self.signer.verify(token).map_err(|e| match e {
                    Rejected::Malformed | Rejected::Expired => Error::InvalidQueueToken,
                })?;
                if claims.typ != QUEUE {
                    return Err(Error::InvalidQueueToken);
                }
                self.verified.insert(token, claims.clone(), claims.exp);
                claims
            }
        };
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
            since_ms: claims.since,
            gen: claims.gen,
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
                &t.issue_waiting(UserId::new(5), ConcertId::new(9), 12, 1_000, 0),
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
        let token = t.issue_waiting(UserId::new(5), ConcertId::new(9), 12, 1_000, 0);
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
    fn an_active_token_stops_verifying_when_its_whole_second_session_ends() {
        let t = tokens();
        let until = (crate::now_ms() / 1000 + 30) * 1000;
        let token = t.issue_active(UserId::new(5), ConcertId::new(9), 1, until - 60_000, until);
        let pass = t.verify(&token, UserId::new(5)).unwrap();
        assert_eq!(pass.active_until_ms(), until);
        assert_eq!(pass.since_ms, until - 60_000);
    }

    #[test]
    fn an_active_token_is_dead_within_the_second_its_session_ends() {
        let t = tokens();
        // The session ends at the start of the current second: the token must already fail.
        let until = (crate::now_ms() / 1000) * 1000;
        let token = t.issue_active(UserId::new(5), ConcertId::new(9), 1, until - 60_000, until);
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
