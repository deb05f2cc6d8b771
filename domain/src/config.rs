//! Typed configuration, read once from `BOXOFFICE_*` environment variables in `main`.
//!
//! Nothing else in the system reads the environment. Every field has a default fit for the
//! local stack and a one-line reason; a missing or malformed variable fails start-up with the
//! variable's name in the message. The same `Config` serves the gateway and the worker so that
//! both always agree on the namespace, the token secret and the TTLs.

use std::{net::SocketAddr, num::NonZeroU32, str::FromStr, time::Duration};

use anyhow::{bail, Context};
use secrecy::{ExposeSecret, SecretString};

/// The development default of `BOXOFFICE_JWT_SECRET`; production mode refuses to start with it.
pub const DEV_JWT_SECRET: &str = "dev-only-secret-change-me-0123456789abcdef";
/// The development default of `BOXOFFICE_ADMIN_TOKEN`; production mode refuses it too.
pub const DEV_ADMIN_TOKEN: &str = "dev-admin-token";

/// Whether the process runs with development defaults allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything a Boxoffice process needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct Config {
    /// `BOXOFFICE_ENV` (development|production, default development).
    pub environment: Environment,
    /// `BOXOFFICE_LOG_FORMAT` (text|json, default text): JSON for log shippers.
    pub log_format: LogFormat,
    /// `BOXOFFICE_HTTP_ADDR` (default 127.0.0.1:9001): the public API, reached through nginx.
    pub http_addr: SocketAddr,
    /// `BOXOFFICE_ADMIN_ADDR` (default 127.0.0.1:9101): /metrics and /admin, never proxied by
    /// the public nginx server.
    pub admin_addr: SocketAddr,
    /// `BOXOFFICE_DATABASE_URL` (default the local stack's Postgres on port 55432).
    pub database_url: SecretString,
    /// `BOXOFFICE_GATEWAY_THREADS` (default: one per core): the gateway's tokio worker
    /// threads; 1 runs the current-thread scheduler (no wake-ups across threads at all).
    /// Replicas are the unit of scale, so a replica given one core does best on one thread: on
    /// the 2-core bench machine, 2 replicas of 2 threads each spent about a tenth of their
    /// samples switching threads, and one thread each took about a fifth less CPU per hold
    /// (`scripts/bench-sales` prints the CPU per request). The local stack sets cores / replicas.
    pub gateway_threads: Option<NonZeroU32>,
    /// `BOXOFFICE_PG_POOL_SIZE` (default 16): two cores saturate long before 16 connections.
    pub pg_pool_size: usize,
    /// `BOXOFFICE_REDIS_URL` (default the local stack's Redis on port 6390).
    pub redis_url: String,
    /// `BOXOFFICE_REDIS_POOL_SIZE` (default 4): fred pipelines, so a few connections suffice.
    pub redis_pool_size: usize,
    /// `BOXOFFICE_REDIS_NAMESPACE` (default `bo`): prefix of every key; tests use a fresh one.
    pub redis_namespace: String,
    /// `BOXOFFICE_JWT_SECRET`: HS256 key for access and queue tokens.
    pub jwt_secret: SecretString,
    /// `BOXOFFICE_ADMIN_TOKEN`: bearer token for the admin endpoints.
    pub admin_token: SecretString,
    /// `BOXOFFICE_ACCESS_TOKEN_TTL_SECS` (default 86400): a day covers any on-sale.
    pub access_token_ttl: Duration,
    /// `BOXOFFICE_BODY_LIMIT_BYTES` (default 16384): the largest legitimate body (a hold of a
    /// few seat ids) is under 1 KiB.
    pub body_limit_bytes: usize,
    /// `BOXOFFICE_USER_RATE_PER_SEC` (default 50): requests per second per user per replica;
    /// a human clicks a few times a second, a script hammering one account is throttled.
    pub user_rate_per_sec: NonZeroU32,
    /// `BOXOFFICE_USER_RATE_BURST` (default 100): short bursts (a page load) pass.
    pub user_rate_burst: NonZeroU32,
    /// `BOXOFFICE_SHUTDOWN_READINESS_DELAY_MS` (default 5000): after the stop signal the gateway
    /// keeps serving this long with `/readyz` at 503 and `Connection: close` on every response
    /// before it stops accepting; 5 s outlasts nginx's 4 s upstream `keepalive_timeout`, so by
    /// then nginx holds no idle connection to this replica that the accept stop could cut.
    pub shutdown_readiness_delay: Duration,
    /// `BOXOFFICE_SHUTDOWN_GRACE_SECS` (default 10): the hard deadline, after the accept stop,
    /// for in-flight requests, the hold and payment batches and the upkeep tasks to finish.
    pub shutdown_grace: Duration,
    /// `BOXOFFICE_HOLD_TTL_SECS` (default 300): the contract's 5-minute hold.
    pub hold_ttl: Duration,
    /// `BOXOFFICE_TICKET_LIMIT` (default 4): tickets one user may hold or buy per schedule.
    pub ticket_limit: u32,
    /// `BOXOFFICE_QUEUE_STATE_TTL_MS` (default 250): how often a gateway re-reads the admission
    /// state and ended log of each concert it serves (one script call per concert, never per
    /// request). Readers accept a copy up to three times this old, never more than 750 ms, so
    /// an ended session is refused on every replica within a second.
    pub queue_state_ttl: Duration,
    /// `BOXOFFICE_WEBHOOK_URL` (default none): where the worker delivers reservation events.
    pub webhook_url: Option<String>,
    /// `BOXOFFICE_WORKER_ID` (default `worker-<pid>`): names this worker in leases and groups.
    pub worker_id: String,
    /// `BOXOFFICE_TICK_MS` (default 100): the worker's admission and expiry tick; the
    /// admission rate is exact to within one tick's worth of users.
    pub tick: Duration,
    /// `BOXOFFICE_QUEUE_LEASE_MS` (default 2000): how long a concert's admission lease lasts
    /// without renewal, so how long admission pauses when its worker dies; 20 ticks, so a
    /// worker stalled for a few ticks (GC of the host, a slow Redis reply) keeps it.
    pub queue_lease: Duration,
    /// `BOXOFFICE_QUEUE_POLICY_REFRESH_MS` (default 2000): how often the worker re-reads the
    /// queue policies from Postgres; an admin change applies within this plus one tick.
    pub queue_policy_refresh: Duration,
    /// `BOXOFFICE_QUEUE_HEARTBEAT_FLUSH_MS` (default 1000): how often a gateway writes the
    /// buffered poll heartbeats to Redis (one pipelined ZADD per concert); well below any
    /// sensible grace period, which must exceed it plus the longest poll interval.
    pub queue_heartbeat_flush: Duration,
    // --- purchase path -------------------------------------------------------------------------
    /// `BOXOFFICE_STREAM_BATCH` (default 500): stream entries written to Postgres per
    /// transaction. An entry is one event, or the holds one script call granted (up to
    /// `holds::batch::MAX_BATCH`, typically a handful): a few thousand rows, tens of ms.
    pub stream_batch: usize,
    /// `BOXOFFICE_STREAM_CLAIM_IDLE_MS` (default 30000): a hold event left unacknowledged this
    /// long by a consumer is taken over by another worker (its owner is presumed dead). Well
    /// above the slowest healthy batch, so a live worker's batch is never stolen.
    pub stream_claim_idle: Duration,
    /// `BOXOFFICE_RECONCILE_AFTER_MS` (default 10000): a payment claim older than this is
    /// settled by the reconciler; a healthy payment takes milliseconds, and one still in
    /// flight is skipped anyway (it holds the hold's lock).
    pub reconcile_after: Duration,
    /// `BOXOFFICE_NOTIFY_BACKOFF_MS` (default 1000): wait after a failed webhook delivery,
    /// doubled on each further failure.
    pub notify_backoff_base: Duration,
    /// `BOXOFFICE_NOTIFY_BACKOFF_CAP_MS` (default 300000): the longest wait between attempts,
    /// so a receiver that comes back after an outage hears from us within five minutes.
    pub notify_backoff_cap: Duration,
    /// `BOXOFFICE_NOTIFY_TIMEOUT_MS` (default 5000): one webhook POST may take this long.
    pub notify_timeout: Duration,
}

impl Config {
    /// Reads the whole configuration from the environment, failing fast on the first bad value.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests can supply variables without
    /// touching the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str, default: &str| lookup(name).unwrap_or_else(|| default.to_owned());
        let parse = |name: &str, default: &str| -> anyhow::Result<u64> {
            let raw = get(name, default);
            raw.parse::<u64>()
                .with_context(|| format!("{name}={raw:?} is not a non-negative integer"))
        };
        let environment = match get("BOXOFFICE_ENV", "development").as_str() {
            "development" => Environment::Development,
            "production" => Environment::Production,
            other => bail!("BOXOFFICE_ENV={other:?} must be development or production"),
        };
        let log_format = match get("BOXOFFICE_LOG_FORMAT", "text").as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => bail!("BOXOFFICE_LOG_FORMAT={other:?} must be text or json"),
        };
        let addr = |name: &str, default: &str| -> anyhow::Result<SocketAddr> {
            let raw = get(name, default);
            SocketAddr::from_str(&raw).with_context(|| format!("{name}={raw:?} is not host:port"))
        };
        let non_zero = |name: &str, default: &str| -> anyhow::Result<NonZeroU32> {
            let value = u32::try_from(parse(name, default)?)
                .with_context(|| format!("{name} is too large"))?;
            NonZeroU32::new(value).with_context(|| format!("{name} must be at least 1"))
        };
        let jwt_secret = get("BOXOFFICE_JWT_SECRET", DEV_JWT_SECRET);
        let admin_token = get("BOXOFFICE_ADMIN_TOKEN", DEV_ADMIN_TOKEN);
        if environment == Environment::Production {
            if jwt_secret == DEV_JWT_SECRET || jwt_secret.len() < 32 {
                bail!("BOXOFFICE_JWT_SECRET must be set to a secret of at least 32 bytes in production");
            }
            if admin_token == DEV_ADMIN_TOKEN || admin_token.len() < 16 {
                bail!("BOXOFFICE_ADMIN_TOKEN must be set to a secret of at least 16 bytes in production");
            }
        }
        let config = Config {
            environment,
            log_format,
            http_addr: addr("BOXOFFICE_HTTP_ADDR", "127.0.0.1:9001")?,
            admin_addr: addr("BOXOFFICE_ADMIN_ADDR", "127.0.0.1:9101")?,
            database_url: get(
                "BOXOFFICE_DATABASE_URL",
                "postgres://boxoffice:boxoffice@127.0.0.1:55432/boxoffice",
            )
            .into(),
            gateway_threads: lookup("BOXOFFICE_GATEWAY_THREADS")
                .map(|_| non_zero("BOXOFFICE_GATEWAY_THREADS", "1"))
                .transpose()?,
            pg_pool_size: parse("BOXOFFICE_PG_POOL_SIZE", "16")? as usize,
            redis_url: get("BOXOFFICE_REDIS_URL", "redis://127.0.0.1:6390"),
            redis_pool_size: parse("BOXOFFICE_REDIS_POOL_SIZE", "4")?.max(1) as usize,
            redis_namespace: get("BOXOFFICE_REDIS_NAMESPACE", "bo"),
            jwt_secret: jwt_secret.into(),
            admin_token: admin_token.into(),
            access_token_ttl: Duration::from_secs(parse(
                "BOXOFFICE_ACCESS_TOKEN_TTL_SECS",
                "86400",
            )?),
            body_limit_bytes: parse("BOXOFFICE_BODY_LIMIT_BYTES", "16384")? as usize,
            user_rate_per_sec: non_zero("BOXOFFICE_USER_RATE_PER_SEC", "50")?,
            user_rate_burst: non_zero("BOXOFFICE_USER_RATE_BURST", "100")?,
            shutdown_readiness_delay: Duration::from_millis(parse(
                "BOXOFFICE_SHUTDOWN_READINESS_DELAY_MS",
                "5000",
            )?),
            shutdown_grace: Duration::from_secs(parse("BOXOFFICE_SHUTDOWN_GRACE_SECS", "10")?),
            hold_ttl: Duration::from_secs(parse("BOXOFFICE_HOLD_TTL_SECS", "300")?),
            ticket_limit: u32::try_from(parse("BOXOFFICE_TICKET_LIMIT", "4")?)
                .context("BOXOFFICE_TICKET_LIMIT is too large")?,
            queue_state_ttl: Duration::from_millis(parse("BOXOFFICE_QUEUE_STATE_TTL_MS", "250")?),
            webhook_url: lookup("BOXOFFICE_WEBHOOK_URL").filter(|url| !url.is_empty()),
            worker_id: get(
                "BOXOFFICE_WORKER_ID",
                &format!("worker-{}", std::process::id()),
            ),
            tick: Duration::from_millis(parse("BOXOFFICE_TICK_MS", "100")?.max(10)),
            queue_lease: Duration::from_millis(parse("BOXOFFICE_QUEUE_LEASE_MS", "2000")?.max(50)),
            queue_policy_refresh: Duration::from_millis(
                parse("BOXOFFICE_QUEUE_POLICY_REFRESH_MS", "2000")?.max(50),
            ),
            queue_heartbeat_flush: Duration::from_millis(
                parse("BOXOFFICE_QUEUE_HEARTBEAT_FLUSH_MS", "1000")?.max(10),
            ),
            stream_batch: parse("BOXOFFICE_STREAM_BATCH", "500")?.clamp(1, 10_000) as usize,
            stream_claim_idle: Duration::from_millis(parse(
                "BOXOFFICE_STREAM_CLAIM_IDLE_MS",
                "30000",
            )?),
            reconcile_after: Duration::from_millis(parse("BOXOFFICE_RECONCILE_AFTER_MS", "10000")?),
            notify_backoff_base: Duration::from_millis(
                parse("BOXOFFICE_NOTIFY_BACKOFF_MS", "1000")?.max(1),
            ),
            notify_backoff_cap: Duration::from_millis(parse(
                "BOXOFFICE_NOTIFY_BACKOFF_CAP_MS",
                "300000",
            )?),
            notify_timeout: Duration::from_millis(
                parse("BOXOFFICE_NOTIFY_TIMEOUT_MS", "5000")?.max(1),
            ),
        };
        if config.queue_lease <= config.tick {
            bail!("BOXOFFICE_QUEUE_LEASE_MS must be longer than BOXOFFICE_TICK_MS, or the lease lapses between ticks");
        }
        if config.redis_namespace.is_empty() || config.redis_namespace.contains(['{', '}', ' ']) {
            bail!("BOXOFFICE_REDIS_NAMESPACE must be non-empty without braces or spaces");
        }
        Ok(config)
    }

    /// The HS256 key shared by every replica.
    pub fn jwt_secret_bytes(&self) -> &[u8] {
        self.jwt_secret.expose_secret().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn production_refuses_the_development_jwt_secret() {
        let err = Config::from_lookup(lookup(&[("BOXOFFICE_ENV", "production")])).unwrap_err();
        assert!(err.to_string().contains("BOXOFFICE_JWT_SECRET"), "{err}");
    }

    #[test]
    fn production_starts_with_real_secrets() {
        let config = Config::from_lookup(lookup(&[
            ("BOXOFFICE_ENV", "production"),
            (
                "BOXOFFICE_JWT_SECRET",
                "a-real-secret-of-more-than-32-bytes!!",
            ),
            ("BOXOFFICE_ADMIN_TOKEN", "a-real-admin-token"),
        ]))
        .unwrap();
        assert_eq!(config.environment, Environment::Production);
    }

    #[test]
    fn gateway_threads_default_to_the_runtime_and_refuse_zero() {
        let default = Config::from_lookup(lookup(&[])).unwrap();
        assert_eq!(default.gateway_threads, None);
        let one = Config::from_lookup(lookup(&[("BOXOFFICE_GATEWAY_THREADS", "1")])).unwrap();
        assert_eq!(one.gateway_threads.map(NonZeroU32::get), Some(1));
        let err = Config::from_lookup(lookup(&[("BOXOFFICE_GATEWAY_THREADS", "0")])).unwrap_err();
        assert!(
            err.to_string().contains("BOXOFFICE_GATEWAY_THREADS"),
            "{err}"
        );
    }

    #[test]
    fn a_malformed_variable_is_named_in_the_error() {
        let err = Config::from_lookup(lookup(&[("BOXOFFICE_PG_POOL_SIZE", "many")])).unwrap_err();
        assert!(err.to_string().contains("BOXOFFICE_PG_POOL_SIZE"), "{err}");
    }
}
