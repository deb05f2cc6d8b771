//! The waiting room (issue 4), against the real Redis and Postgres, with real in-process
//! gateways and the real worker admission loop, racing. This module holds the fixtures the
//! queue tests share; the tests sit by concept: joining ([`join`]), the admitter's order, rate
//! and lease ([`admission`]), ACTIVE capacity and the sessions that free it ([`sessions`]),
//! the queue token and the ACTIVE guard ([`tokens`]), the admin policy and metrics
//! ([`policy`]).
//!
//! Timing knobs are short (tick 50 ms, state refresh 100 ms, heartbeat flush 100 ms, policy
//! refresh 200 ms, lease 500 ms). Where a test must wait for the worker it polls for the
//! condition with a deadline ([`eventually`]); counts are asserted exactly. Time is the real
//! one: admission, expiry and heartbeats are measured by Redis's clock (`TIME` in the
//! scripts), which `tokio::time::pause` does not reach.

mod admission;
mod join;
mod policy;
mod sessions;
mod tokens;

use std::{collections::HashMap, time::Duration};

use boxoffice_domain::{
    identity::AccessTokens,
    ids::{ConcertId, UserId},
    queue::QueueTokens,
    tokens::Signer,
    Config,
};
use fred::prelude::*;
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::helpers::*;

/// Short timings so the worker's effects show within a second.
const QUEUE_OVERRIDES: &[(&str, &str)] = &[
    ("BOXOFFICE_TICK_MS", "50"),
    ("BOXOFFICE_QUEUE_STATE_TTL_MS", "100"),
    ("BOXOFFICE_QUEUE_HEARTBEAT_FLUSH_MS", "100"),
    ("BOXOFFICE_QUEUE_POLICY_REFRESH_MS", "200"),
    ("BOXOFFICE_QUEUE_LEASE_MS", "500"),
];

fn queue_config(extra: &[(&str, &str)]) -> Config {
    let mut vars = QUEUE_OVERRIDES.to_vec();
    vars.extend_from_slice(extra);
    test_config(&vars)
}

async fn spawn_queue_app() -> TestApp {
    spawn_app_with(queue_config(&[])).await
}

/// A second gateway on the same namespace as `app`.
async fn spawn_twin(app: &TestApp) -> TestApp {
    spawn_app_with(queue_config(&[(
        "BOXOFFICE_REDIS_NAMESPACE",
        &app.config.redis_namespace,
    )]))
    .await
}

/// `n` users created straight in Postgres, with access tokens minted with the app's secret:
/// sign-up has its own tests, and 10,000 HTTP sign-ups would dominate this file's run time.
async fn users(app: &TestApp, n: i64) -> Vec<User> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "WITH u AS (INSERT INTO users (name) SELECT 'queue-' || g FROM generate_series(1, $1) g \
         RETURNING id) INSERT INTO point_balances (user_id) SELECT id FROM u RETURNING user_id",
    )
    .bind(n)
    .fetch_all(&app.pg)
    .await
    .expect(START_HINT);
    let access = AccessTokens::new(
        Signer::new(app.config.jwt_secret_bytes()),
        app.config.access_token_ttl,
    );
    ids.into_iter()
        .map(|id| User {
            id,
            token: access.issue(UserId::new(id)),
        })
        .collect()
}

fn queue_tokens(app: &TestApp) -> QueueTokens {
    QueueTokens::new(Signer::new(app.config.jwt_secret_bytes()))
}

fn queue_path(concert: ConcertId) -> String {
    format!("/api/v1/concerts/{concert}/queue")
}

async fn join(app: &TestApp, concert: ConcertId, user: &User) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(&queue_path(concert)))
        .header("authorization", user.bearer())
        .send()
        .await
        .expect("join");
    let status = response.status().as_u16();
    (status, response.json().await.expect("join body"))
}

async fn poll(app: &TestApp, concert: ConcertId, user: &User, token: &str) -> reqwest::Response {
    app.http
        .get(app.url(&queue_path(concert)))
        .header("authorization", user.bearer())
        .header("queue-token", token)
        .send()
        .await
        .expect("poll")
}

async fn poll_ok(app: &TestApp, concert: ConcertId, user: &User, token: &str) -> Value {
    let response = poll(app, concert, user, token).await;
    assert_eq!(response.status(), 200, "poll failed");
    response.json().await.expect("poll body")
}

/// Polls with `token` until the answer satisfies `done` (within 2 s), and returns it: a replica's
/// cached admission state may be a few hundred ms behind the admitter.
async fn poll_until(
    app: &TestApp,
    concert: ConcertId,
    user: &User,
    token: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    eventually(
        "a poll's answer to get there",
        Duration::from_secs(2),
        || async {
            let body = poll_ok(app, concert, user, token).await;
            done(&body).then_some(body)
        },
    )
    .await
}

async fn leave(app: &TestApp, concert: ConcertId, user: &User, token: &str) {
    let response = app
        .http
        .delete(app.url(&queue_path(concert)))
        .header("authorization", user.bearer())
        .header("queue-token", token)
        .send()
        .await
        .expect("leave");
    assert_eq!(response.status(), 204);
}

fn token_of(body: &Value) -> String {
    body["queueToken"].as_str().expect("queueToken").to_owned()
}

fn place_of(app: &TestApp, user: &User, token: &str) -> i64 {
    queue_tokens(app)
        .verify(token, UserId::new(user.id))
        .expect("a genuine queue token")
        .place
}

fn policy(rate: u32, max_active: u32, session: u32, grace: u32, shuffle: bool) -> Value {
    json!({
        "admitPerSecond": rate,
        "maxActive": max_active,
        "sessionSeconds": session,
        "graceSeconds": grace,
        "shuffleAtOpen": shuffle,
    })
}

fn admin_url(app: &TestApp, concert: ConcertId) -> String {
    format!(
        "http://{}/admin/concerts/{concert}/queue-policy",
        app.admin_addr
    )
}

async fn put_policy(app: &TestApp, concert: ConcertId, body: Value) {
    let response = app
        .http
        .put(admin_url(app, concert))
        .bearer_auth(app.config.admin_token.expose_secret())
        .json(&body)
        .send()
        .await
        .expect("put policy");
    assert_eq!(response.status(), 200, "policy refused");
}

/// The concert's admission state as the admitter published it.
async fn state(app: &TestApp, concert: ConcertId) -> HashMap<String, String> {
    app.redis
        .next()
        .hgetall(app.keys.queue_state(concert))
        .await
        .expect("state")
}

fn field(state: &HashMap<String, String>, name: &str) -> i64 {
    state
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

async fn active_count(app: &TestApp, concert: ConcertId) -> i64 {
    app.redis
        .next()
        .zcard(app.keys.queue_active(concert))
        .await
        .expect("zcard")
}

/// user id -> admission ms of everyone admitted and still ACTIVE.
async fn admissions(app: &TestApp, concert: ConcertId) -> HashMap<i64, i64> {
    app.redis
        .next()
        .hgetall(app.keys.queue_admitted(concert))
        .await
        .expect("admitted")
}

/// user id -> place of everyone waiting or ACTIVE.
async fn places(app: &TestApp, concert: ConcertId) -> HashMap<i64, i64> {
    app.redis
        .next()
        .hgetall(app.keys.queue_places(concert))
        .await
        .expect("places")
}

/// Joins every user (200 requests in flight), spreading them over `apps`; returns the join
/// bodies in user order.
async fn join_all(apps: &[&TestApp], concert: ConcertId, users: &[User]) -> Vec<(u16, Value)> {
    futures::stream::iter(users.iter().enumerate())
        .map(|(i, user)| join(apps[i % apps.len()], concert, user))
        .buffered(200)
        .collect()
        .await
}

async fn open_concert(app: &TestApp) -> ConcertId {
    create_concert(&app.pg, Sale::Open, 1, 10, None).await.id
}
