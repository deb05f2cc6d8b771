//! Test harness: an in-process gateway (and worker, when a test needs one) on port 0 with a
//! fresh Redis namespace, against the local stack's Postgres and Redis; and the stack's nginx
//! for the tests that must go through it.
//!
//! Isolation: every test signs up its own users and creates its own concerts, and gets its own
//! Redis namespace, so tests run in parallel against one database.

#![allow(
    dead_code,
    reason = "each test module uses a different part of the harness"
)]

use std::{net::SocketAddr, time::Duration};

use boxoffice_domain::{
    ids::{ConcertId, UserId},
    queue::QueueTokens,
    redis::Keys,
    tokens::Signer,
    Config,
};
use boxoffice_gateway::{startup::Application, state::AppState};
use chrono::{DateTime, Utc};
use fred::prelude::*;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::oneshot;

/// How the stack is started, for failure messages.
pub const START_HINT: &str = "the local stack is not running: start it with `scripts/stack start`";

/// The base URL of the stack's nginx.
pub fn nginx_url() -> String {
    std::env::var("BOXOFFICE_TEST_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into())
}

/// A test configuration: the stack's databases, port 0 listeners, a fresh namespace.
pub fn test_config(overrides: &[(&str, &str)]) -> Config {
    let namespace = format!("t-{}", uuid::Uuid::new_v4().simple());
    let mut vars: Vec<(String, String)> = vec![
        ("BOXOFFICE_HTTP_ADDR".into(), "127.0.0.1:0".into()),
        ("BOXOFFICE_ADMIN_ADDR".into(), "127.0.0.1:0".into()),
        ("BOXOFFICE_REDIS_NAMESPACE".into(), namespace),
        // Concurrency tests send many requests per user; the limiter has its own test.
        ("BOXOFFICE_USER_RATE_PER_SEC".into(), "100000".into()),
        ("BOXOFFICE_USER_RATE_BURST".into(), "100000".into()),
        ("BOXOFFICE_PG_POOL_SIZE".into(), "8".into()),
        // No balancer to wait for in-process: `stop` goes straight to the drain.
        ("BOXOFFICE_SHUTDOWN_READINESS_DELAY_MS".into(), "0".into()),
    ];
    vars.extend(
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Config::from_lookup(|name| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
    })
    .expect("test configuration is valid")
}

/// A running in-process gateway.
pub struct TestApp {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub config: Config,
    pub http: reqwest::Client,
    pub pg: PgPool,
    pub redis: Pool,
    pub keys: Keys,
    /// The app's shared state, for tests that call an extractor or a cache directly.
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// The URL of `path` on this app.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the app gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("gateway task")
                .expect("gateway shut down cleanly");
        }
    }
}

/// Starts a gateway with the test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_config(&[])).await
}

/// Starts a gateway with `config`.
pub async fn spawn_app_with(config: Config) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        boxoffice_domain::telemetry::init_tracing(boxoffice_domain::config::LogFormat::Text);
    }
    let app = Application::build(config.clone()).await.expect(START_HINT);
    let (addr, admin_addr) = (app.public_addr(), app.admin_addr());
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    // The harness's own connections use the stack's real addresses, even when the app under
    // test was given a broken one on purpose.
    let stack = test_config(&[]);
    let pg = pg_pool(&stack).await;
    let redis = boxoffice_domain::redis::connect(&stack.redis_url, 2)
        .await
        .expect(START_HINT);
    TestApp {
        addr,
        admin_addr,
        keys: Keys::new(&config.redis_namespace),
        state,
        config,
        http: http_client(),
        pg,
        redis,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// A client with a generous pool for concurrency tests.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// A sqlx pool on the stack's Postgres.
pub async fn pg_pool(config: &Config) -> PgPool {
    use secrecy::ExposeSecret;
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect(config.database_url.expose_secret())
        .await
        .expect(START_HINT)
}

/// A signed-up user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub token: String,
}

impl User {
    /// `Authorization` header value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

/// Signs a user up through `base` (an app URL or nginx).
pub async fn sign_up(http: &reqwest::Client, base: &str, name: &str) -> User {
    let response = http
        .post(format!("{base}/api/v1/users"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .expect(START_HINT);
    assert_eq!(response.status(), 201, "sign-up failed");
    let body: Value = response.json().await.expect("sign-up body");
    User {
        id: body["userId"].as_i64().expect("userId"),
        token: body["accessToken"]
            .as_str()
            .expect("accessToken")
            .to_owned(),
    }
}

/// The sale window of a test concert.
#[derive(Debug, Clone, Copy)]
pub enum Sale {
    /// Opened an hour ago, closes in a day.
    Open,
    /// Opens at the given instant.
    OpensAt(DateTime<Utc>),
    /// Closed an hour ago.
    Closed,
}

/// Creates a concert with one schedule, `seated` seated sections of `seats_per_section`
/// seats each (price 100 per seat), and optionally a GA section; returns its id.
pub async fn create_concert(
    pg: &PgPool,
    sale: Sale,
    seated: i32,
    seats_per_section: i32,
    ga_capacity: Option<i32>,
) -> TestConcert {
    let now = Utc::now();
    let (opens, closes) = match sale {
        Sale::Open => (
            now - chrono::Duration::hours(1),
            now + chrono::Duration::days(1),
        ),
        Sale::OpensAt(at) => (at, at + chrono::Duration::days(1)),
        Sale::Closed => (
            now - chrono::Duration::days(2),
            now - chrono::Duration::hours(1),
        ),
    };
    let mut tx = pg.begin().await.expect("begin");
    let concert: i64 = sqlx::query_scalar(
        "INSERT INTO concerts (title, venue, sale_opens_at, sale_closes_at) VALUES ('Test concert', 'Test hall', $1, $2) RETURNING id",
    )
    .bind(opens)
    .bind(closes)
    .fetch_one(&mut *tx)
    .await
    .expect("insert concert");
    let schedule: i64 = sqlx::query_scalar(
        "INSERT INTO schedules (concert_id, starts_at, sale_opens_at, sale_closes_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(concert)
    .bind(closes + chrono::Duration::days(7))
    .bind(opens)
    .bind(closes)
    .fetch_one(&mut *tx)
    .await
    .expect("insert schedule");
    let mut sections = Vec::new();
    for s in 0..seated {
        let section: i64 = sqlx::query_scalar(
            "INSERT INTO sections (schedule_id, name, kind, price, capacity) VALUES ($1, $2, 'SEATED', 100, $3) RETURNING id",
        )
        .bind(schedule)
        .bind(format!("S{s}"))
        .bind(seats_per_section)
        .fetch_one(&mut *tx)
        .await
        .expect("insert section");
        sqlx::query(
            "INSERT INTO seats (section_id, schedule_id, seat_no, price) \
             SELECT $1, $2, 'S' || $3 || '-' || n, 100 FROM generate_series(1, $4) AS n",
        )
        .bind(section)
        .bind(schedule)
        .bind(s)
        .bind(seats_per_section)
        .execute(&mut *tx)
        .await
        .expect("insert seats");
        sections.push(section);
    }
    let ga_section = match ga_capacity {
        Some(capacity) => Some(
            sqlx::query_scalar(
                "INSERT INTO sections (schedule_id, name, kind, price, capacity) VALUES ($1, 'GA', 'GA', 50, $2) RETURNING id",
            )
            .bind(schedule)
            .bind(capacity)
            .fetch_one(&mut *tx)
            .await
            .expect("insert GA section"),
        ),
        None => None,
    };
    tx.commit().await.expect("commit");
    TestConcert {
        id: ConcertId::new(concert),
        schedule,
        sections,
        ga_section,
    }
}

/// Ids of a concert made by [`create_concert`].
#[derive(Debug, Clone)]
pub struct TestConcert {
    pub id: ConcertId,
    pub schedule: i64,
    pub sections: Vec<i64>,
    pub ga_section: Option<i64>,
}

/// The general-admission places Redis says are left in `section` of `concert`.
pub async fn ga_remaining(app: &TestApp, concert: ConcertId, section: i64) -> i64 {
    app.redis
        .get(
            app.keys
                .ga_remaining(concert, boxoffice_domain::ids::SectionId::new(section)),
        )
        .await
        .expect("GA counter")
}

/// Asserts `response` is problem+json with `status` and `code`, and returns the body.
pub async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "problem lacks {field}: {body}");
    }
    body
}

// --- purchase path -----------------------------------------------------------------------------

/// An ACTIVE queue token for `user` in `concert`, minted directly: the purchase-path tests
/// need admission, not the waiting room (whose own tests admit for real).
pub fn admit(app: &TestApp, user: &User, concert: ConcertId) -> String {
    let now = boxoffice_domain::now_ms();
    QueueTokens::new(Signer::new(app.config.jwt_secret_bytes())).issue_active(
        UserId::new(user.id),
        concert,
        1,
        now,
        now + 600_000,
    )
}

/// A signed-up user with an ACTIVE token for one concert.
#[derive(Debug, Clone)]
pub struct Buyer {
    pub user: User,
    pub queue_token: String,
}

/// Signs up `n` buyers on `app` (concurrently) and admits each to `concert`.
pub async fn buyers(app: &TestApp, concert: ConcertId, n: usize) -> Vec<Buyer> {
    let base = app.url("");
    futures::future::join_all((0..n).map(|i| {
        let (http, base) = (app.http.clone(), base.clone());
        async move { sign_up(&http, &base, &format!("buyer-{i}")).await }
    }))
    .await
    .into_iter()
    .map(|user| Buyer {
        queue_token: admit(app, &user, concert),
        user,
    })
    .collect()
}

/// `POST /schedules/{schedule}/holds` with `body` on `base`.
pub async fn post_hold(
    http: &reqwest::Client,
    base: &str,
    buyer: &Buyer,
    schedule: i64,
    body: Value,
) -> reqwest::Response {
    http.post(format!("{base}/api/v1/schedules/{schedule}/holds"))
        .header("authorization", buyer.user.bearer())
        .header("queue-token", &buyer.queue_token)
        .json(&body)
        .send()
        .await
        .expect(START_HINT)
}

/// Holds `body` and asserts 201; returns the hold.
pub async fn hold_ok(app: &TestApp, buyer: &Buyer, schedule: i64, body: Value) -> Value {
    let response = post_hold(&app.http, &app.url(""), buyer, schedule, body).await;
    let status = response.status();
    let body: Value = response.json().await.expect("hold body");
    assert_eq!(status, 201, "hold refused: {body}");
    body
}

/// `POST /holds/{hold}/payment` with an idempotency key.
pub async fn pay(
    http: &reqwest::Client,
    base: &str,
    user: &User,
    hold: &str,
    key: &str,
) -> reqwest::Response {
    http.post(format!("{base}/api/v1/holds/{hold}/payment"))
        .header("authorization", user.bearer())
        .header("idempotency-key", key)
        .send()
        .await
        .expect(START_HINT)
}

/// Pays a hold (its body from [`hold_ok`]) with a key derived from its id, asserts 201 and
/// returns the payment.
pub async fn pay_ok(app: &TestApp, user: &User, hold: &Value) -> Value {
    let id = hold["holdId"].as_str().expect("holdId");
    let response = pay(&app.http, &app.url(""), user, id, &format!("k-{id}")).await;
    let status = response.status();
    let body: Value = response.json().await.expect("payment body");
    assert_eq!(status, 201, "payment refused: {body}");
    body
}

/// Charges `amount` points to `user` and asserts success.
pub async fn charge(app: &TestApp, user: &User, amount: i64) {
    let response = app
        .http
        .post(app.url("/api/v1/me/points/charges"))
        .header("authorization", user.bearer())
        .json(&json!({ "amount": amount }))
        .send()
        .await
        .expect(START_HINT);
    assert_eq!(response.status(), 200, "charge failed");
}

/// `GET` with both tokens, returning the JSON body after asserting 200.
pub async fn get_active(app: &TestApp, buyer: &Buyer, path: &str) -> Value {
    let response = app
        .http
        .get(app.url(path))
        .header("authorization", buyer.user.bearer())
        .header("queue-token", &buyer.queue_token)
        .send()
        .await
        .expect(START_HINT);
    let status = response.status();
    let body: Value = response.json().await.expect("json body");
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The status of each seat of a seat map, by seat id.
pub fn statuses(seat_map: &Value) -> std::collections::HashMap<i64, String> {
    seat_map["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| {
            (
                s["seatId"].as_i64().expect("seatId"),
                s["status"].as_str().expect("status").to_owned(),
            )
        })
        .collect()
}

/// The seat ids of a section, in order.
pub async fn seat_ids(pg: &PgPool, section: i64) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM seats WHERE section_id = $1 ORDER BY id")
        .bind(section)
        .fetch_all(pg)
        .await
        .expect("seat ids")
}

/// What a check of [`eventually`] answers: `bool` (done or not yet), or `Option<T>` (the value
/// it was waiting for, or not yet).
pub trait Outcome {
    /// What [`eventually`] returns once the check is done.
    type Value;
    /// `Some` once done.
    fn done(self) -> Option<Self::Value>;
}

impl Outcome for bool {
    type Value = ();
    fn done(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn done(self) -> Option<T> {
        self
    }
}

/// Waits until `check` is done (`true`, or `Some(value)`, which it returns), polling, and fails
/// the test with `what` after `timeout`. The condition is what the test waits for; the poll
/// interval (20 ms) only bounds how late it notices, which the latency assertions of the queue
/// tests allow for.
pub async fn eventually<F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> <Fut::Output as Outcome>::Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future,
    Fut::Output: Outcome,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await.done() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A worker running in-process: its loops, spawned directly rather than through
/// `Worker::run`, so that a test can kill them wherever they are. (`run` adds only the
/// worker's own admin listener, which no test reads, and the pool's close, done here in
/// [`TestWorker::stop`].)
pub struct TestWorker {
    deps: boxoffice_worker::startup::Deps,
    cancel: tokio_util::sync::CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TestWorker {
    /// Stops the loops at their next safe point, waits for them (failing the test if one
    /// panicked) and closes the worker's Postgres pool, as `Worker::run` does.
    pub async fn stop(self) {
        self.cancel.cancel();
        for task in self.tasks {
            task.await.expect("worker loop");
        }
        self.deps.pg.close().await;
    }

    /// Kills the loops wherever they are (mid-batch included), like a crashed process.
    pub async fn kill(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Starts every loop of a worker with `config` (the same namespace as the app under test, and
/// its own `worker_id` when a test runs two).
pub async fn spawn_worker(config: &Config) -> TestWorker {
    let worker = boxoffice_worker::startup::Worker::build(config.clone())
        .await
        .expect(START_HINT);
    let deps = worker.context().clone();
    let cancel = tokio_util::sync::CancellationToken::new();
    let tasks = boxoffice_worker::loops(&deps, &cancel);
    TestWorker {
        deps,
        cancel,
        tasks,
    }
}
