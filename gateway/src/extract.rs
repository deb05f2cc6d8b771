//! Request extractors that turn headers, paths and bodies into domain types, refusing bad
//! input with the contract's problem codes instead of axum's plain-text rejections.

use axum::{
    extract::{rejection::JsonRejection, FromRequest, FromRequestParts, Request},
    http::request::Parts,
};
use boxoffice_domain::{
    ids::{ConcertId, HoldId, UserId},
    points::IdempotencyKey,
    queue::{QueuePass, QueueStatus},
    Error,
};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;

use crate::{problem::ApiError, state::AppState};

/// The user named by a valid `Authorization: Bearer <accessToken>`, within their rate limit.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub UserId);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(Error::Unauthorized)?;
        let user = state.access.verify(token.trim())?;
        // Rate limiting after verification: an unauthenticated flood is refused by the
        // signature check, which is cheaper than a limiter entry per forged id.
        if state.limiter.check_key(&user.get()).is_err() {
            return Err(Error::RateLimited.into());
        }
        Ok(AuthUser(user))
    }
}

/// The `Idempotency-Key` header, when present and valid.
#[derive(Debug, Clone)]
pub struct OptionalIdempotencyKey(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for OptionalIdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.headers.get("idempotency-key") {
            None => Ok(Self(None)),
            Some(value) => {
                let raw = value
                    .to_str()
                    .map_err(|_| Error::InvalidInput("Idempotency-Key is not ASCII".into()))?;
                Ok(Self(Some(IdempotencyKey::parse(raw)?)))
            }
        }
    }
}

/// The `Idempotency-Key` header, required.
#[derive(Debug, Clone)]
pub struct RequiredIdempotencyKey(pub IdempotencyKey);

impl<S: Send + Sync> FromRequestParts<S> for RequiredIdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let OptionalIdempotencyKey(key) =
            OptionalIdempotencyKey::from_request_parts(parts, state).await?;
        key.map(Self).ok_or(Error::IdempotencyKeyRequired.into())
    }
}

/// Whether the client accepts a gzip-encoded response (`Accept-Encoding` names `gzip` or `*`
/// with a non-zero q-value). Never a rejection: an unreadable header just means no.
#[derive(Debug, Clone, Copy)]
pub struct AcceptsGzip(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for AcceptsGzip {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let accepts = parts
            .headers
            .get_all(http::header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(accepts_gzip);
        Ok(Self(accepts))
    }
}

/// One `Accept-Encoding` element: `gzip` or `*`, unless its q-value is zero.
fn accepts_gzip(element: &str) -> bool {
    let mut parts = element.split(';').map(str::trim);
    let coding = parts.next().unwrap_or_default();
    if !(coding.eq_ignore_ascii_case("gzip") || coding == "*") {
        return false;
    }
    parts
        .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
        .all(|q| q.trim().parse::<f32>().is_ok_and(|q| q > 0.0))
}

/// A JSON body, with axum's rejections mapped to problem codes.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection, state.config.body_limit_bytes).into()),
        }
    }
}

fn json_rejection(rejection: JsonRejection, limit: usize) -> Error {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Error::UnsupportedMediaType,
        JsonRejection::JsonDataError(e) => {
            Error::InvalidInput(format!("request body: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(_) => {
            Error::InvalidInput("request body is not valid JSON".into())
        }
        JsonRejection::BytesRejection(e) if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE => {
            Error::PayloadTooLarge { limit }
        }
        other => Error::InvalidInput(other.body_text()),
    }
}

/// A path parameter parsed as an id, refused as `INVALID_INPUT` when it is not one.
#[derive(Debug, Clone, Copy)]
pub struct PathId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| Error::InvalidInput("missing path parameter".into()))?;
        raw.parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(PathId)
            .ok_or_else(|| Error::InvalidInput(format!("{raw:?} is not an id")).into())
    }
}

/// A hold id from the path. Anything that is not one of our hold ids names no hold: 404, the
/// same answer as another user's hold.
#[derive(Debug, Clone, Copy)]
pub struct HoldPath(pub HoldId);

impl<S: Send + Sync> FromRequestParts<S> for HoldPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| Error::HoldNotFound)?;
        Ok(Self(HoldId::parse(&raw).ok_or(Error::HoldNotFound)?))
    }
}

/// The raw `Queue-Token` header.
fn queue_token(parts: &Parts) -> Result<&str, Error> {
    parts
        .headers
        .get("queue-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(Error::InvalidQueueToken)
}

/// A verified `Queue-Token` of the authenticated user, in any status (for poll and leave).
#[derive(Debug, Clone, Copy)]
pub struct QueueHolder(pub QueuePass);

impl FromRequestParts<AppState> for QueueHolder {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AuthUser(user) = AuthUser::from_request_parts(parts, state).await?;
        let pass = state.queue_tokens.verify(queue_token(parts)?, user)?;
        Ok(Self(pass))
    }
}

/// The raw `Queue-Token` header, for the poll to hand back unchanged when nothing changed
/// (the client replaces its token with whatever a response carries; re-signing an identical
/// token on every poll would cost a signature for nothing).
#[derive(Debug, Clone)]
pub struct QueueTokenHeader(pub String);

impl<S: Send + Sync> FromRequestParts<S> for QueueTokenHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Self(queue_token(parts)?.to_owned()))
    }
}

/// The guard of every ACTIVE endpoint: an access token plus an ACTIVE queue token of the same
/// user whose session has not ended. No Redis round trip in the common case: the token is
/// verified locally and ended sessions come from the replica's cache of the concert's ended
/// log, which is never more than [`crate::cache::QueueViews::max_age`] (750 ms) behind Redis;
/// on the first request for a concert, or when the background refresh has fallen behind, the
/// guard reads the log itself (one round trip) before answering, so a session that ended is
/// refused on every replica within a second.
#[derive(Debug, Clone, Copy)]
pub struct Admitted {
    pub user: UserId,
    pub concert: ConcertId,
}

impl Admitted {
    /// Refuses the request unless the session was granted for `concert`.
    pub fn require(self, concert: ConcertId) -> Result<(), Error> {
        if self.concert == concert {
            Ok(())
        } else {
            Err(Error::QueueNotActive)
        }
    }
}

impl FromRequestParts<AppState> for Admitted {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AuthUser(user) = AuthUser::from_request_parts(parts, state).await?;
        let token = queue_token(parts).map_err(|_| Error::QueueNotActive)?;
        let pass = match state.queue_tokens.verify(token, user) {
            Ok(pass) => pass,
            // An expired ACTIVE token is a session that ran out: not active, not forged.
            Err(Error::InvalidQueueToken) => return Err(Error::QueueNotActive.into()),
            Err(e) => return Err(e.into()),
        };
        if pass.status != QueueStatus::Active {
            return Err(Error::QueueNotActive.into());
        }
        // Makes sure this replica's copy of the concert's ended log is fresh (no I/O when the
        // background refresher keeps up).
        state.caches.queue.get(pass.concert).await?;
        if state
            .caches
            .ended_sessions
            .has_ended(pass.concert, user, pass.since_ms)
        {
            return Err(Error::QueueNotActive.into());
        }
        Ok(Self {
            user,
            concert: pass.concert,
        })
    }
}

/// An admin request: `Authorization: Bearer <BOXOFFICE_ADMIN_TOKEN>`. Only routed on the admin
/// port, which nginx never proxies; the token is a second lock on that door.
#[derive(Debug, Clone, Copy)]
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        let expected = state.config.admin_token.expose_secret();
        if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
            Ok(Self)
        } else {
            Err(Error::AdminOnly.into())
        }
    }
}

/// Compares two secrets in time that depends only on their lengths, so response timing does
/// not reveal how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::{accepts_gzip, constant_time_eq};

    #[test]
    fn gzip_is_accepted_when_named_or_wildcarded_without_a_zero_q() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip(" GZIP;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("gzip; q=0.0"));
        assert!(!accepts_gzip("deflate"));
        assert!(!accepts_gzip("br"));
        assert!(!accepts_gzip(""));
    }

    #[test]
    fn only_the_identical_secret_is_equal() {
        assert!(constant_time_eq(b"admin-token", b"admin-token"));
        assert!(!constant_time_eq(b"admin-token", b"admin-tokeN"));
        assert!(!constant_time_eq(b"admin-token", b"admin-token-longer"));
        assert!(!constant_time_eq(b"", b"admin-token"));
    }
}
