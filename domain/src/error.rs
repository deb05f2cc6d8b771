//! The one error type of the domain. Every variant is a stable contract `code`; the gateway's
//! `problem.rs` is the only place that turns it into an HTTP status and a problem+json body.

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
    #[error("a dependency is unavailable: {0}")]
    Unavailable(&'static str),
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
            Error::Unavailable(_) => "UNAVAILABLE",
            Error::Internal(_) => "INTERNAL",
        }
    }

    /// The same answer again, for each request of a batch that failed as one (an error is not
    /// `Clone`: it may carry a source).
    pub fn repeat(&self) -> Error {
        match self {
            Error::Unavailable(what) => Error::Unavailable(what),
            other => anyhow::anyhow!("{other}").into(),
        }
    }

    /// Where the error came from; `Dependency` errors are safe to retry.
    pub fn origin(&self) -> Origin {
        match self {
            Error::Unavailable(_) => Origin::Dependency,
            Error::Internal(_) => Origin::Internal,
            _ => Origin::Client,
        }
    }
}

impl From<fred::error::Error> for Error {
    fn from(e: fred::error::Error) -> Self {
        tracing::warn!(error = %e, "redis call failed");
        Error::Unavailable("redis")
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        // A closed connection or an I/O error is a dependency failure; anything else (a
        // constraint we did not expect, bad SQL) is our bug.
        if e.is_closed() || e.code().is_none() {
            tracing::warn!(error = %e, "postgres call failed");
            Error::Unavailable("postgres")
        } else {
            Error::Internal(anyhow::Error::new(e).context("postgres statement failed"))
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        tracing::warn!(error = %e, "postgres pool exhausted or unreachable");
        Error::Unavailable("postgres")
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Error::Unavailable("postgres")
            }
            other => Error::Internal(anyhow::Error::new(other)),
        }
    }
}

/// The result type of every domain operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
