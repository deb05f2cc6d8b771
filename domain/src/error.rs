//! The one error type of the domain. Every variant is a stable contract `code`; the gateway's
//! `problem.rs` is the only place that turns it into an HTTP status and a problem+json body.

use std::{fmt, sync::Arc};

/// Where an error came from, after pingora's habit: it tells the edge what to log and whether
/// a client may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The request was wrong; retrying it unchanged gives the same answer.
    Client,
    /// A dependency (Postgres, Redis) failed or timed out; a retry may succeed.
    Dependency,
    /// A bug or broken invariant on our side.
    Internal,
}

/// Every failure a domain operation can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidInput(String),
    #[error("amount must be a positive integer no larger than {max}")]
    InvalidAmount { max: i64 },
    #[error("missing or invalid access token")]
    Unauthorized,
    #[error("too many requests")]
    RateLimited,
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("concert not found")]
    ConcertNotFound,
    #[error("concert is not on sale")]
    ConcertNotOnSale,
    #[error("missing, invalid or expired queue token")]
    InvalidQueueToken,
    #[error("queue token belongs to another user or concert")]
    QueueTokenMismatch,
    #[error("an ACTIVE waiting-room session is required")]
    QueueNotActive,
    #[error("this place in line is gone (left, skipped after going silent for longer than the grace period, or its session ended); join again")]
    QueuePlaceLost,
    #[error("schedule not found")]
    ScheduleNotFound,
    #[error("section not found")]
    SectionNotFound,
    #[error("one or more seats are held or sold")]
    SeatUnavailable,
    #[error("no tickets left in this section")]
    SoldOut,
    #[error("sale for this schedule is not open")]
    SaleNotOpen,
    #[error("at most {limit} tickets per user for one schedule")]
    HoldLimitExceeded { limit: u32 },
    #[error("hold not found")]
    HoldNotFound,
    #[error("hold expired")]
    HoldExpired,
    #[error("hold is already paid or being paid")]
    HoldAlreadyPaid,
    #[error("not enough points: balance {balance}, needed {needed}")]
    InsufficientPoints { balance: i64, needed: i64 },
    #[error("Idempotency-Key header is required")]
    IdempotencyKeyRequired,
    #[error("Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("admin token required")]
    AdminOnly,
    #[error("{dependency} is unavailable")]
    Unavailable {
        dependency: Dependency,
        /// What failed, kept for the log line at the edge (never shown to the client).
        #[source]
        cause: Cause,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// The stable machine-readable code of the HTTP contract.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidInput(_) => "INVALID_INPUT",
            Error::InvalidAmount { .. } => "INVALID_AMOUNT",
            Error::Unauthorized => "UNAUTHORIZED",
            Error::RateLimited => "RATE_LIMITED",
            Error::RouteNotFound => "NOT_FOUND",
            Error::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Error::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Error::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Error::ConcertNotFound => "CONCERT_NOT_FOUND",
            Error::ConcertNotOnSale => "CONCERT_NOT_ON_SALE",
            Error::InvalidQueueToken => "INVALID_QUEUE_TOKEN",
            Error::QueueTokenMismatch => "QUEUE_TOKEN_MISMATCH",
            Error::QueueNotActive => "QUEUE_NOT_ACTIVE",
            Error::QueuePlaceLost => "QUEUE_PLACE_LOST",
            Error::ScheduleNotFound => "SCHEDULE_NOT_FOUND",
            Error::SectionNotFound => "SECTION_NOT_FOUND",
            Error::SeatUnavailable => "SEAT_UNAVAILABLE",
            Error::SoldOut => "SOLD_OUT",
            Error::SaleNotOpen => "SALE_NOT_OPEN",
            Error::HoldLimitExceeded { .. } => "HOLD_LIMIT_EXCEEDED",
            Error::HoldNotFound => "HOLD_NOT_FOUND",
            Error::HoldExpired => "HOLD_EXPIRED",
            Error::HoldAlreadyPaid => "HOLD_ALREADY_PAID",
            Error::InsufficientPoints { .. } => "INSUFFICIENT_POINTS",
            Error::IdempotencyKeyRequired => "IDEMPOTENCY_KEY_REQUIRED",
            Error::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Error::AdminOnly => "ADMIN_ONLY",
            Error::Unavailable { .. } => "UNAVAILABLE",
            Error::Internal(_) => "INTERNAL",
        }
    }

    /// A dependency failure, keeping what failed as its cause.
    pub fn unavailable(
        dependency: Dependency,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Unavailable {
            dependency,
            cause: Cause(Arc::from(cause.into())),
        }
    }

    /// The same answer again, for each request of a batch or a cache load that failed as one
    /// (an error is not `Clone`: an internal one carries an `anyhow` chain, which keeps its
    /// whole text here). Exhaustive, so a new variant says how it repeats.
    pub fn repeat(&self) -> Error {
        use Error as E;
        match self {
            E::InvalidInput(message) => E::InvalidInput(message.clone()),
            E::InvalidAmount { max } => E::InvalidAmount { max: *max },
            E::Unauthorized => E::Unauthorized,
            E::RateLimited => E::RateLimited,
            E::RouteNotFound => E::RouteNotFound,
            E::MethodNotAllowed => E::MethodNotAllowed,
            E::UnsupportedMediaType => E::UnsupportedMediaType,
            E::PayloadTooLarge { limit } => E::PayloadTooLarge { limit: *limit },
            E::ConcertNotFound => E::ConcertNotFound,
            E::ConcertNotOnSale => E::ConcertNotOnSale,
            E::InvalidQueueToken => E::InvalidQueueToken,
            E::QueueTokenMismatch => E::QueueTokenMismatch,
            E::QueueNotActive => E::QueueNotActive,
            E::QueuePlaceLost => E::QueuePlaceLost,
            E::ScheduleNotFound => E::ScheduleNotFound,
            E::SectionNotFound => E::SectionNotFound,
            E::SeatUnavailable => E::SeatUnavailable,
            E::SoldOut => E::SoldOut,
            E::SaleNotOpen => E::SaleNotOpen,
            E::HoldLimitExceeded { limit } => E::HoldLimitExceeded { limit: *limit },
            E::HoldNotFound => E::HoldNotFound,
            E::HoldExpired => E::HoldExpired,
            E::HoldAlreadyPaid => E::HoldAlreadyPaid,
            E::InsufficientPoints { balance, needed } => E::InsufficientPoints {
                balance: *balance,
                needed: *needed,
            },
            E::IdempotencyKeyRequired => E::IdempotencyKeyRequired,
            E::IdempotencyKeyReused => E::IdempotencyKeyReused,
            E::AdminOnly => E::AdminOnly,
            E::Unavailable { dependency, cause } => E::Unavailable {
                dependency: *dependency,
                cause: cause.clone(),
            },
            E::Internal(_) => anyhow::anyhow!("{}", self.report()).into(),
        }
    }

    /// Where the error came from; `Dependency` errors are safe to retry.
    pub fn origin(&self) -> Origin {
        match self {
            Error::Unavailable { .. } => Origin::Dependency,
            Error::Internal(_) => Origin::Internal,
            _ => Origin::Client,
        }
    }

    /// The error with its whole cause chain, `outer: inner: innermost`, for the one log line
    /// at the edge.
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }
}

/// A dependency the domain calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Redis,
    Postgres,
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dependency::Redis => "redis",
            Dependency::Postgres => "postgres",
        })
    }
}

/// The cause of a dependency failure. Shared, so that one failure can answer every request of
/// a batch ([`Error::repeat`]) without losing it.
#[derive(Debug, Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Displays an error and each of its sources, joined by `: ` ([`Error::report`]).
pub struct Report<'a>(&'a Error);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(self.0);
        // `Internal` wraps an anyhow error transparently: its own chain starts at the top.
        if let Error::Internal(e) = self.0 {
            return e
                .chain()
                .skip(1)
                .try_for_each(|cause| write!(f, ": {cause}"));
        }
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

// The conversions below keep the dependency's error as the cause and log nothing: the edge
// (the gateway's `problem.rs`, a worker loop) logs each failure once, with its whole chain.

impl From<fred::error::Error> for Error {
    fn from(e: fred::error::Error) -> Self {
        Error::unavailable(Dependency::Redis, e)
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        // A closed connection or an I/O error is a dependency failure; anything else (a
        // constraint we did not expect, bad SQL) is our bug.
        if e.is_closed() || e.code().is_none() {
            Error::unavailable(Dependency::Postgres, e)
        } else {
            Error::Internal(anyhow::Error::new(e).context("postgres statement failed"))
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Error::unavailable(Dependency::Postgres, e)
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Error::unavailable(Dependency::Postgres, e)
            }
            other => Error::Internal(anyhow::Error::new(other)),
        }
    }
}

/// The result type of every domain operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connection reset")]
    struct Reset(#[source] std::io::Error);

    #[test]
    fn a_dependency_failure_keeps_its_cause_chain_and_repeats_with_it() {
        let error = Error::unavailable(
            Dependency::Redis,
            Reset(std::io::Error::other("peer went away")),
        );
        let chain = "redis is unavailable: connection reset: peer went away";
        assert_eq!(error.report().to_string(), chain);
        assert_eq!(error.repeat().report().to_string(), chain);
        assert_eq!(error.origin(), Origin::Dependency);
    }

    #[test]
    fn an_internal_error_reports_its_context_chain_once() {
        let error: Error = anyhow::anyhow!("disk full")
            .context("writing the batch")
            .into();
        assert_eq!(error.report().to_string(), "writing the batch: disk full");
        assert_eq!(
            error.repeat().report().to_string(),
            "writing the batch: disk full"
        );
    }
}
