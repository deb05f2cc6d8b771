//! The waiting room (issue 4), against the real Redis and Postgres, with real in-process
//! gateways and the real worker admission loop, racing.
//!
//! Timing knobs are short (tick 50 ms, state refresh 100 ms, heartbeat flush 100 ms, policy
//! refresh 200 ms, lease 500 ms). Where a test must wait for the worker it polls for the
//! condition with a deadline ([`eventually`]); counts are asserted exactly. Time is the real
//! one: admission, expiry and heartbeats are measured by Redis's clock (`TIME` in the
//! scripts), which `tokio::time::pause` does not reach.

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{extract::FromRequestParts, response::IntoResponse};
use boxoffice_domain::{
    concerts::ConcertId,
    identity::{AccessTokens, UserId},
    queue::{self, token::QueueClaims, QueueStatus, QueueTokens},
    tokens::{now_secs, Signer},
    Config,
};
use boxoffice_gateway::extract::Admitted;
use boxoffice_worker::{admission, startup::Worker};
use chrono::Utc;
use fred::prelude::*;
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

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

// --- join -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_concurrent_joins_get_places_one_to_ten_thousand_and_rejoins_get_the_same_places(
) {
    let a = spawn_queue_app().await;
    let b = spawn_twin(&a).await;
    let concert = open_concert(&a).await;
    let crowd = users(&a, 10_000).await;

    let joined = join_all(&[&a, &b], concert, &crowd).await;
    let mut seen = HashMap::new();
    for (user, (status, body)) in crowd.iter().zip(&joined) {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(body["status"], "WAITING");
        let place = place_of(&a, user, &token_of(body));
        // No worker runs, so the front is 0 and the position is the place; the ETA uses the
        // default policy rate (100/s) and the poll interval grows with the distance.
        assert_eq!(body["position"], place, "{body}");
        assert_eq!(body["etaSeconds"], (place + 99) / 100, "{body}");
        let poll_after = body["pollAfterMs"].as_i64().unwrap();
        if place <= 100 {
            assert!(poll_after <= 1_100, "{body}");
        }
        if place >= 8_000 {
            assert!(poll_after >= 18_000, "{body}");
        }
        assert!(seen.insert(place, user.id).is_none(), "place {place} twice");
    }
    let mut all: Vec<i64> = seen.keys().copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=10_000).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    let seq: i64 = a.redis.next().get(a.keys.queue_seq(concert)).await.unwrap();
    assert_eq!(seq, 10_000);

    // 1,000 of them join again, concurrently, through both replicas.
    let again = join_all(&[&b, &a], concert, &crowd[..1_000]).await;
    for (user, (status, body)) in crowd.iter().zip(&again) {
        assert_eq!(*status, 200, "{body}");
        let place = place_of(&a, user, &token_of(body));
        assert_eq!(seen[&place], user.id, "the same place as the first join");
    }
    let seq: i64 = a.redis.next().get(a.keys.queue_seq(concert)).await.unwrap();
    assert_eq!(seq, 10_000, "re-joins hand out no place");
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn joining_the_queue_twice_at_once_returns_the_same_position() {
    let app = spawn_queue_app().await;
    let concert = open_concert(&app).await;
    let crowd = users(&app, 100).await;
    // Every user joins five times concurrently.
    let attempts: Vec<&User> = crowd.iter().cycle().take(500).collect();
    let results: Vec<(i64, u16, i64)> = futures::stream::iter(attempts)
        .map(|user| async {
            let (status, body) = join(&app, concert, user).await;
            (user.id, status, place_of(&app, user, &token_of(&body)))
        })
        .buffer_unordered(200)
        .collect()
        .await;
    let mut by_user: HashMap<i64, (usize, HashSet<i64>)> = HashMap::new();
    for (user, status, place) in results {
        let entry = by_user.entry(user).or_default();
        entry.0 += usize::from(status == 201);
        entry.1.insert(place);
    }
    let mut places: Vec<i64> = Vec::new();
    for (user, (created, user_places)) in by_user {
        assert_eq!(created, 1, "user {user}: exactly one 201");
        assert_eq!(user_places.len(), 1, "user {user}: one place");
        places.extend(user_places);
    }
    places.sort_unstable();
    assert_eq!(places, (1..=100).collect::<Vec<_>>());
    app.stop().await;
}

#[tokio::test]
async fn join_refuses_unknown_closed_and_sold_out_concerts_and_takes_pre_queue_joins() {
    let app = spawn_queue_app().await;
    let user = sign_up(&app.http, &app.url(""), "refused").await;
    let post = |concert: i64| {
        app.http
            .post(app.url(&format!("/api/v1/concerts/{concert}/queue")))
            .header("authorization", user.bearer())
            .send()
    };
    assert_problem(post(i64::MAX).await.unwrap(), 404, "CONCERT_NOT_FOUND").await;
    let closed = create_concert(&app.pg, Sale::Closed, 1, 1, None).await.id;
    assert_problem(
        post(closed.get()).await.unwrap(),
        409,
        "CONCERT_NOT_ON_SALE",
    )
    .await;
    let sold_out = open_concert(&app).await;
    sqlx::query("UPDATE concerts SET sold_out = true WHERE id = $1")
        .bind(sold_out.get())
        .execute(&app.pg)
        .await
        .unwrap();
    assert_problem(
        post(sold_out.get()).await.unwrap(),
        409,
        "CONCERT_NOT_ON_SALE",
    )
    .await;
    let upcoming = create_concert(
        &app.pg,
        Sale::OpensAt(Utc::now() + chrono::Duration::hours(1)),
        1,
        1,
        None,
    )
    .await
    .id;
    let (status, body) = join(&app, upcoming, &user).await;
    assert_eq!(status, 201, "pre-queue: {body}");
    assert!(body["etaSeconds"].as_i64().unwrap() >= 3_500, "{body}");
    let anonymous = app
        .http
        .post(app.url(&queue_path(upcoming)))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401, "UNAUTHORIZED").await;
    app.stop().await;
}

// --- admission --------------------------------------------------------------------------------

#[tokio::test]
async fn an_empty_room_nobody_joined_lately_leaves_the_work_list_until_the_next_join() {
    let app = spawn_queue_app().await;
    let (empty, busy) = (open_concert(&app).await, open_concert(&app).await);
    put_policy(&app, busy, policy(10, 1, 600, 600, false)).await;
    let crowd = users(&app, 4).await;
    let (_, body) = join(&app, empty, &crowd[0]).await;
    leave(&app, empty, &crowd[0], &token_of(&body)).await;
    join(&app, busy, &crowd[1]).await;
    join(&app, busy, &crowd[2]).await;
    // Both registrations made two minutes old, as if no gateway had seen a join since.
    let registry = app.keys.queue_registry();
    let old = (boxoffice_domain::now_ms() - 120_000) as f64;
    let _: i64 = app
        .redis
        .zadd(
            &registry,
            None,
            None,
            false,
            false,
            vec![(old, empty.get()), (old, busy.get())],
        )
        .await
        .unwrap();
    let registered = |concert: ConcertId| {
        let (redis, registry) = (app.redis.clone(), registry.clone());
        async move {
            let score: Option<f64> = redis.zscore(&registry, concert.get()).await.unwrap();
            score.is_some()
        }
    };

    let worker = spawn_worker(&app.config).await;
    eventually("the empty room retired", Duration::from_secs(5), || async {
        !registered(empty).await
    })
    .await;
    // The room with one user ACTIVE and one waiting was ticked too, and stays.
    eventually("busy room admitted one", Duration::from_secs(5), || async {
        active_count(&app, busy).await == 1
    })
    .await;
    assert!(
        registered(busy).await,
        "a room with people in it left the work list"
    );

    // A join (on a replica that has not registered the room lately) brings it back, and
    // the worker admits again.
    let twin = spawn_twin(&app).await;
    let (status, body) = join(&twin, empty, &crowd[3]).await;
    assert_eq!(status, 201, "{body}");
    assert!(registered(empty).await);
    poll_until(&twin, empty, &crowd[3], &token_of(&body), |b| {
        b["status"] == "ACTIVE"
    })
    .await;
    worker.stop().await;
    twin.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn users_are_admitted_in_the_order_they_joined() {
    let app = spawn_queue_app().await;
    let concert = open_concert(&app).await;
    put_policy(&app, concert, policy(40, 10_000, 600, 600, false)).await;
    let crowd = users(&app, 100).await;
    let joined = join_all(&[&app], concert, &crowd).await;
    let tokens: Vec<String> = joined.iter().map(|(_, body)| token_of(body)).collect();
    let place: HashMap<i64, i64> = crowd
        .iter()
        .zip(&tokens)
        .map(|(u, t)| (u.id, place_of(&app, u, t)))
        .collect();

    let worker = spawn_worker(&app.config).await;
    eventually("everyone admitted", Duration::from_secs(10), || async {
        admissions(&app, concert).await.len() == 100
    })
    .await;
    worker.stop().await;

    let admitted = admissions(&app, concert).await;
    let mut order: Vec<(i64, i64)> = admitted.iter().map(|(u, at)| (place[u], *at)).collect();
    order.sort_unstable();
    for pair in order.windows(2) {
        assert!(
            pair[0].1 <= pair[1].1,
            "place {} admitted at {} after place {} at {}",
            pair[0].0,
            pair[0].1,
            pair[1].0,
            pair[1].1
        );
    }
    let ticks: HashSet<i64> = admitted.values().copied().collect();
    assert!(ticks.len() >= 20, "spread over many ticks at 40/s");
    // The WAITING tokens cross the front: one Redis read, then an ACTIVE token.
    for (user, token) in crowd.iter().zip(&tokens).take(10) {
        let body = poll_ok(&app, concert, user, token).await;
        assert_eq!(body["status"], "ACTIVE", "{body}");
        assert!(body["activeUntil"].is_string(), "{body}");
        let pass = queue_tokens(&app)
            .verify(&token_of(&body), UserId::new(user.id))
            .unwrap();
        assert_eq!(pass.status, QueueStatus::Active);
        // The ACTIVE token answers the next poll by itself.
        let again = poll_ok(&app, concert, user, &token_of(&body)).await;
        assert_eq!(again["queueToken"], body["queueToken"]);
    }
    app.stop().await;
}

#[tokio::test]
async fn over_ten_seconds_the_admitted_count_is_the_rate_times_the_time_within_one_tick() {
    const RATE: i64 = 50;
    let app = spawn_queue_app().await;
    let concert = open_concert(&app).await;
    put_policy(&app, concert, policy(RATE as u32, 100_000, 600, 600, false)).await;
    let crowd = users(&app, 800).await;
    let joined = join_all(&[&app], concert, &crowd).await;
    let worker = spawn_worker(&app.config).await;
    eventually("admission under way", Duration::from_secs(5), || async {
        field(&state(&app, concert).await, "admitted_total") >= 20
    })
    .await;
    // Once the admitter has observed a few seconds of admission, the ETA of someone far back
    // is their position over the observed rate (the front moves at RATE places per second).
    eventually("a rate observed", Duration::from_secs(8), || async {
        state(&app, concert)
            .await
            .get("rate")
            .and_then(|r| r.parse::<f64>().ok())
            .is_some_and(|r| r > 0.0)
    })
    .await;
    let (user, (_, body)) = crowd
        .iter()
        .zip(&joined)
        .max_by_key(|(u, (_, body))| place_of(&app, u, &token_of(body)))
        .unwrap();
    let answer = poll_ok(&app, concert, user, &token_of(body)).await;
    let (position, eta) = (
        answer["position"].as_f64().unwrap(),
        answer["etaSeconds"].as_f64().unwrap(),
    );
    let honest = position / RATE as f64;
    assert!(
        (eta - honest).abs() <= honest * 0.25 + 1.0,
        "position {position} at {RATE}/s should wait about {honest} s, ETA says {eta}"
    );
    let (wall_start, first) = (Instant::now(), state(&app, concert).await);
    let from = field(&first, "last_ms");
    eventually("ten seconds of ticks", Duration::from_secs(15), || async {
        field(&state(&app, concert).await, "last_ms") >= from + 10_000
    })
    .await;
    let (wall, last) = (wall_start.elapsed(), state(&app, concert).await);
    worker.stop().await;

    // By the admitter's own clock: the bucket refills at RATE per second and is emptied every
    // tick, so the count is exact up to the bucket's fractional remainder.
    let elapsed_ms = field(&last, "last_ms") - field(&first, "last_ms");
    let admitted = field(&last, "admitted_total") - field(&first, "admitted_total");
    let expected = RATE * elapsed_ms / 1_000;
    let one_tick = RATE * 50 / 1_000 + 1;
    assert!(
        (admitted - expected).abs() <= one_tick,
        "admitted {admitted} in {elapsed_ms} ms, expected {expected} ± {one_tick}"
    );
    // By the wall clock the window's ends fall between ticks: one more tick's worth of slack.
    let wall_expected = RATE * wall.as_millis() as i64 / 1_000;
    assert!(
        (admitted - wall_expected).abs() <= 2 * one_tick,
        "admitted {admitted} in {wall:?} by the wall clock"
    );
    app.stop().await;
}

#[tokio::test]
async fn max_active_is_never_exceeded_and_expired_sessions_free_capacity() {
    const MAX_ACTIVE: i64 = 10;
    let app = spawn_queue_app().await;
    let concert = open_concert(&app).await;
    put_policy(&app, concert, policy(100, MAX_ACTIVE as u32, 1, 600, false)).await;
    let crowd = users(&app, 60).await;
    join_all(&[&app], concert, &crowd).await;
    let worker = spawn_worker(&app.config).await;
    let started = Instant::now();
    let mut samples = 0;
    let mut peak = 0;
    // Sample the ACTIVE set as fast as Redis answers until sessions expired and were refilled
    // several times over.
    while field(&state(&app, concert).await, "admitted_total") < 40 {
        let active = active_count(&app, concert).await;
        assert!(active <= MAX_ACTIVE, "{active} ACTIVE at once");
        peak = peak.max(active);
        samples += 1;
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "capacity never freed"
        );
    }
    worker.stop().await;
    assert_eq!(peak, MAX_ACTIVE, "capacity was used");
    assert!(samples > 100, "sampled {samples} times");
    app.stop().await;
}

#[tokio::test]
async fn leaving_ends_an_active_session_at_once_and_frees_its_capacity() {
    let app = spawn_queue_app().await;
    let concert = open_concert(&app).await;
    put_policy(&app, concert, policy(100, 1, 600, 600, false)).await;
    let crowd = users(&app, 2).await;
    // One after the other, so the first user holds place 1.
    let joined = [
        join(&app, concert, &crowd[0]).await,
        join(&app, concert, &crowd[1]).await,
    ];
    let worker = spawn_worker(&app.config).await;
    let (first, second) = (&crowd[0], &crowd[1]);
    eventually(
        "the first user admitted",
        Duration::from_secs(5),
        || async { admissions(&app, concert).await.contains_key(&first.id) },
    )
    .await;
    // The first poll after the admission may still see the front a few hundred ms old.
    let active = poll_until(&app, concert, first, &token_of(&joined[0].1), |body| {
        body["status"] == "ACTIVE"
    })
    .await;
    let waiting = poll_ok(&app, concert, second, &token_of(&joined[1].1)).await;
    assert_eq!(waiting["status"], "WAITING", "capacity is 1");
    assert_eq!(waiting["position"], 1);

    leave(&app, concert, first, &token_of(&active)).await;
    let left_at = Instant::now();
    eventually(
        "the second user admitted",
        Duration::from_secs(2),
        || async { admissions(&app, concert).await.contains_key(&second.id) },
    )
    .await;
    assert!(
        left_at.elapsed() < Duration::from_secs(2),
        "freed by the leave, long before the 600 s session would end"
    );
    // A token used after leave is refused: the ACTIVE one and the old WAITING one.
    for token in [token_of(&active), token_of(&joined[0].1)] {
        assert_problem(
            poll(&app, concert, first, &token).await,
            410,
            "QUEUE_PLACE_LOST",
        )
        .await;
    }
    // Joining again after leaving is a new place at the back.
    let (status, body) = join(&app, concert, first).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(place_of(&app, first, &token_of(&body)), 3);
    worker.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn users_who_stop_polling_are_skipped_after_the_grace_period_and_the_line_keeps_moving() {
    let app = spawn_queue_app().await;
    // The sale opens in 2.5 s: by then the silent users' last sign of life (their join) is
    // older than the 1 s grace period, while the pollers keep theirs fresh.
    let opens = Utc::now() + chrono::Duration::milliseconds(2_500);
    let concert = create_concert(&app.pg, Sale::OpensAt(opens), 1, 1, None)
        .await
        .id;
    put_policy(&app, concert, policy(100, 1_000, 600, 1, false)).await;
    let crowd = users(&app, 20).await;
    let joined = join_all(&[&app], concert, &crowd).await;
    let worker = spawn_worker(&app.config).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut pollers = Vec::new();
    for (user, (_, body)) in crowd.iter().zip(&joined).step_by(2) {
        let (app_http, url, user, token, stop) = (
            app.http.clone(),
            app.url(&queue_path(concert)),
            user.clone(),
            token_of(body),
            stop.clone(),
        );
        pollers.push(tokio::spawn(async move {
            let mut token = token;
            while !stop.load(Ordering::Relaxed) {
                let response = app_http
                    .get(&url)
                    .header("authorization", user.bearer())
                    .header("queue-token", &token)
                    .send()
                    .await
                    .expect("poll");
                assert_eq!(response.status(), 200, "a poller lost its place");
                let body: Value = response.json().await.expect("poll body");
                token = token_of(&body);
                if body["status"] == "ACTIVE" {
                    return;
                }
                // Not synchronisation: this is the pollers' cadence, the workload itself. A
                // poll every 200 ms keeps their sign of life well inside the 1 s grace period,
                // which the admitter measures by Redis's clock, so the time must really pass.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    let pollers_ids: HashSet<i64> = crowd.iter().step_by(2).map(|u| u.id).collect();
    eventually("every poller admitted", Duration::from_secs(10), || async {
        let admitted = admissions(&app, concert).await;
        pollers_ids.iter().all(|id| admitted.contains_key(id))
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for poller in pollers {
        poller.await.expect("poller");
    }
    let final_state = state(&app, concert).await;
    worker.stop().await;
    assert_eq!(field(&final_state, "abandoned_total"), 10);
    assert_eq!(field(&final_state, "admitted_total"), 10);
    assert_eq!(field(&final_state, "waiting"), 0, "nobody left in line");
    let admitted = admissions(&app, concert).await;
    for (user, (_, body)) in crowd.iter().zip(&joined).skip(1).step_by(2) {
        assert!(
            !admitted.contains_key(&user.id),
            "a silent user was admitted"
        );
        assert_problem(
            poll(&app, concert, user, &token_of(body)).await,
            410,
            "QUEUE_PLACE_LOST",
        )
        .await;
    }
    app.stop().await;
}

#[tokio::test]
async fn shuffle_at_open_admits_the_pre_queue_in_a_new_gap_free_order_and_later_joiners_after_it() {
    let app = spawn_queue_app().await;
    let opens = Utc::now() + chrono::Duration::milliseconds(2_000);
    let concert = create_concert(&app.pg, Sale::OpensAt(opens), 1, 1, None)
        .await
        .id;
    // Ten ACTIVE at most, so most of the pre-queue is still waiting after the shuffle.
    put_policy(&app, concert, policy(1_000, 10, 600, 600, true)).await;
    let early = users(&app, 50).await;
    let early_joins = join_all(&[&app], concert, &early).await;
    let original: Vec<i64> = early
        .iter()
        .zip(&early_joins)
        .map(|(u, (_, body))| place_of(&app, u, &token_of(body)))
        .collect();
    let mut joined_places = original.clone();
    joined_places.sort_unstable();
    assert_eq!(joined_places, (1..=50).collect::<Vec<_>>());
    let worker = spawn_worker(&app.config).await;
    eventually(
        "the sale opened and ten admitted",
        Duration::from_secs(6),
        || async { admissions(&app, concert).await.len() == 10 },
    )
    .await;
    let late = users(&app, 10).await;
    let late_joins = join_all(&[&app], concert, &late).await;

    let shuffled = places(&app, concert).await;
    let mut early_places: Vec<i64> = early.iter().map(|u| shuffled[&u.id]).collect();
    let moved = early
        .iter()
        .zip(&original)
        .filter(|(u, p)| shuffled[&u.id] != **p)
        .count();
    assert!(moved > 0, "the pre-queue was shuffled");
    early_places.sort_unstable();
    assert_eq!(early_places, (1..=50).collect::<Vec<_>>(), "still gap-free");
    let mut late_places: Vec<i64> = late
        .iter()
        .zip(&late_joins)
        .map(|(u, (_, body))| place_of(&app, u, &token_of(body)))
        .collect();
    late_places.sort_unstable();
    assert_eq!(
        late_places,
        (51..=60).collect::<Vec<_>>(),
        "behind the pre-queue"
    );
    let admitted = admissions(&app, concert).await;
    let first_ten: HashSet<i64> = early
        .iter()
        .filter(|u| shuffled[&u.id] <= 10)
        .map(|u| u.id)
        .collect();
    assert_eq!(
        admitted.keys().copied().collect::<HashSet<_>>(),
        first_ten,
        "admitted in the new order"
    );
    // A pre-queued user still waiting polls with the token of their old place: one read, and
    // a fresh token carrying the new place.
    let (user, (_, body)) = early
        .iter()
        .zip(&early_joins)
        .find(|(u, _)| shuffled[&u.id] > 10)
        .unwrap();
    // (Once this replica's cached state shows the shuffle, within a few hundred ms.)
    let answer = poll_until(&app, concert, user, &token_of(body), |answer| {
        place_of(&app, user, &token_of(answer)) == shuffled[&user.id]
    })
    .await;
    assert_eq!(answer["status"], "WAITING");
    assert_eq!(answer["position"], shuffled[&user.id] - 10);

    // Lift the cap through the admin endpoint: the worker picks it up within seconds and the
    // later joiners go in after every pre-queued user.
    put_policy(&app, concert, policy(1_000, 1_000, 600, 600, true)).await;
    eventually("everyone admitted", Duration::from_secs(5), || async {
        admissions(&app, concert).await.len() == 60
    })
    .await;
    worker.stop().await;
    let admitted = admissions(&app, concert).await;
    let last_early = early.iter().map(|u| admitted[&u.id]).max().unwrap();
    let first_late = late.iter().map(|u| admitted[&u.id]).min().unwrap();
    assert!(
        first_late >= last_early,
        "later joiners after the pre-queue"
    );
    let mut order: Vec<(i64, i64)> = admitted
        .iter()
        .map(|(u, at)| (shuffled.get(u).copied().unwrap_or(i64::MAX), *at))
        .collect();
    order.sort_unstable();
    assert!(
        order.windows(2).all(|w| w[0].1 <= w[1].1),
        "in new-place order"
    );
    app.stop().await;
}

#[tokio::test]
async fn two_workers_admit_at_the_rate_of_one_and_a_dead_ones_lease_fails_over() {
    const RATE: i64 = 20;
    let app = spawn_queue_app().await;
    let concert = open_concert(&app).await;
    put_policy(&app, concert, policy(RATE as u32, 100_000, 600, 600, false)).await;
    let crowd = users(&app, 400).await;
    join_all(&[&app], concert, &crowd).await;
    let ns = app.config.redis_namespace.clone();
    let mut loops = HashMap::new();
    for id in ["worker-a", "worker-b"] {
        let config = queue_config(&[
            ("BOXOFFICE_REDIS_NAMESPACE", &ns),
            ("BOXOFFICE_WORKER_ID", id),
        ]);
        let worker = Worker::build(config).await.expect(START_HINT);
        let handle = admission::spawn(worker.context().clone(), CancellationToken::new());
        loops.insert(id.to_owned(), handle);
    }
    let window = |seconds: i64| {
        let app = &app;
        async move {
            let first = state(app, concert).await;
            let from = field(&first, "last_ms");
            eventually("ticks", Duration::from_secs(seconds as u64 + 5), || async {
                field(&state(app, concert).await, "last_ms") >= from + seconds * 1_000
            })
            .await;
            let last = state(app, concert).await;
            let elapsed = field(&last, "last_ms") - from;
            let admitted = field(&last, "admitted_total") - field(&first, "admitted_total");
            (admitted, RATE * elapsed / 1_000)
        }
    };
    eventually("admission under way", Duration::from_secs(5), || async {
        field(&state(&app, concert).await, "admitted_total") > 0
    })
    .await;
    let (admitted, expected) = window(3).await;
    assert!(
        (admitted - expected).abs() <= 2,
        "two workers: {admitted} admitted, one worker's rate gives {expected}"
    );

    // Kill the lease owner without any cleanup.
    let owner: String = app
        .redis
        .next()
        .get(app.keys.queue_lease(concert))
        .await
        .unwrap();
    loops
        .remove(&owner)
        .expect("the owner is one of ours")
        .abort();
    let killed_at = Instant::now();
    let total_at_kill = field(&state(&app, concert).await, "admitted_total");
    eventually(
        "the survivor takes over",
        Duration::from_secs(3),
        || async {
            let lease: Option<String> = app
                .redis
                .next()
                .get(app.keys.queue_lease(concert))
                .await
                .unwrap();
            lease.is_some_and(|l| l != owner)
                && field(&state(&app, concert).await, "admitted_total") > total_at_kill
        },
    )
    .await;
    let gap = killed_at.elapsed();
    assert!(
        gap <= Duration::from_millis(500 + 300),
        "admission resumed after {gap:?}; the lease is 500 ms"
    );
    let (admitted, expected) = window(3).await;
    assert!(
        (admitted - expected).abs() <= 2,
        "after failover: {admitted} admitted, expected {expected}"
    );
    for (_, handle) in loops {
        handle.abort();
    }
    app.stop().await;
}

// --- tokens and the ACTIVE guard ----------------------------------------------------------------

/// Runs THE guard of the ACTIVE endpoints on `app` as a request with these tokens would.
async fn guard(app: &TestApp, user: &User, queue_token: &str) -> Result<Admitted, u16> {
    let (mut parts, ()) = http::Request::builder()
        .header("authorization", user.bearer())
        .header("queue-token", queue_token)
        .body(())
        .expect("a valid request")
        .into_parts();
    Admitted::from_request_parts(&mut parts, &app.state)
        .await
        .map_err(|e| e.into_response().status().as_u16())
}

/// Joins `user` and waits until a poll says ACTIVE; returns the ACTIVE token.
async fn admitted_token(app: &TestApp, concert: ConcertId, user: &User) -> String {
    let (_, body) = join(app, concert, user).await;
    // Each answer carries the token to poll with next.
    let token = RefCell::new(token_of(&body));
    eventually("the user admitted", Duration::from_secs(5), || async {
        let current = token.borrow().clone();
        let body = poll_ok(app, concert, user, &current).await;
        let next = token_of(&body);
        token.replace(next.clone());
        (body["status"] == "ACTIVE").then_some(next)
    })
    .await
}

#[tokio::test]
async fn a_session_that_ended_is_refused_on_every_replica_within_a_second() {
    let a = spawn_queue_app().await;
    let b = spawn_twin(&a).await;
    let concert = open_concert(&a).await;
    put_policy(&a, concert, policy(100, 1_000, 600, 600, false)).await;
    let worker = spawn_worker(&a.config).await;
    let crowd = users(&a, 2).await;
    for (i, user) in crowd.iter().enumerate() {
        let token = admitted_token(&a, concert, user).await;
        for app in [&a, &b] {
            let admitted = guard(app, user, &token)
                .await
                .expect("ACTIVE on both replicas");
            assert_eq!((admitted.user.get(), admitted.concert), (user.id, concert));
            assert!(admitted.require(concert).is_ok());
        }
        // The first user leaves through replica A; the second pays (the purchase path's hook).
        let ended_at = Instant::now();
        if i == 0 {
            leave(&a, concert, user, &token).await;
        } else {
            queue::end_session(&a.redis, &a.keys, concert, UserId::new(user.id))
                .await
                .unwrap();
        }
        eventually(
            "refused on both replicas",
            Duration::from_secs(2),
            || async {
                guard(&a, user, &token).await.err() == Some(403)
                    && guard(&b, user, &token).await.err() == Some(403)
            },
        )
        .await;
        assert!(
            ended_at.elapsed() < Duration::from_secs(1),
            "both replicas refused only after {:?}",
            ended_at.elapsed()
        );
        for app in [&a, &b] {
            assert_problem(
                poll(app, concert, user, &token).await,
                410,
                "QUEUE_PLACE_LOST",
            )
            .await;
        }
        let active: Option<f64> = a
            .redis
            .next()
            .zscore(a.keys.queue_active(concert), user.id)
            .await
            .unwrap();
        assert_eq!(active, None, "capacity freed");
    }
    worker.stop().await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn forged_expired_other_concert_and_other_user_queue_tokens_are_refused() {
    let app = spawn_queue_app().await;
    let concert = open_concert(&app).await;
    let other_concert = open_concert(&app).await;
    let crowd = users(&app, 2).await;
    let (owner, stranger) = (&crowd[0], &crowd[1]);
    let (_, body) = join(&app, concert, owner).await;
    let token = token_of(&body);
    assert_eq!(
        poll_ok(&app, concert, owner, &token).await["status"],
        "WAITING"
    );

    let claims = |exp: u64| QueueClaims {
        sub: owner.id.to_string(),
        cid: concert.get(),
        place: 1,
        st: QueueStatus::Waiting,
        adm: None,
        since: 0,
        gen: 0,
        iat: now_secs(),
        exp,
        typ: "queue".into(),
    };
    let forged = Signer::new(b"not-the-secret").sign(&claims(now_secs() + 60));
    let expired = Signer::new(app.config.jwt_secret_bytes()).sign(&claims(now_secs() - 10));
    for bad in [forged.as_str(), expired.as_str(), "garbage"] {
        assert_problem(
            poll(&app, concert, owner, bad).await,
            401,
            "INVALID_QUEUE_TOKEN",
        )
        .await;
    }
    let missing = app
        .http
        .get(app.url(&queue_path(concert)))
        .header("authorization", owner.bearer())
        .send()
        .await
        .unwrap();
    assert_problem(missing, 401, "INVALID_QUEUE_TOKEN").await;
    assert_problem(
        poll(&app, other_concert, owner, &token).await,
        403,
        "QUEUE_TOKEN_MISMATCH",
    )
    .await;
    assert_problem(
        poll(&app, concert, stranger, &token).await,
        403,
        "QUEUE_TOKEN_MISMATCH",
    )
    .await;
    // A WAITING token opens no ACTIVE endpoint.
    assert_eq!(guard(&app, owner, &token).await.err(), Some(403));
    // After leave, the token is spent.
    leave(&app, concert, owner, &token).await;
    assert_problem(
        poll(&app, concert, owner, &token).await,
        410,
        "QUEUE_PLACE_LOST",
    )
    .await;
    app.stop().await;
}

// --- policy and metrics -------------------------------------------------------------------------

#[tokio::test]
async fn the_queue_policy_is_set_through_the_admin_port_only_and_reaches_the_worker() {
    let app = spawn_queue_app().await;
    let concert = open_concert(&app).await;
    let get = app
        .http
        .get(admin_url(&app, concert))
        .bearer_auth(app.config.admin_token.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let body: Value = get.json().await.unwrap();
    assert_eq!(body["isDefault"], true, "{body}");
    assert_eq!(body["sessionSeconds"], 600);

    let put = |token: Option<&str>, body: Value| {
        let request = app.http.put(admin_url(&app, concert)).json(&body);
        match token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
        .send()
    };
    let good = policy(7, 70, 30, 20, true);
    assert_problem(put(None, good.clone()).await.unwrap(), 403, "ADMIN_ONLY").await;
    assert_problem(
        put(Some("wrong"), good.clone()).await.unwrap(),
        403,
        "ADMIN_ONLY",
    )
    .await;
    let admin = app.config.admin_token.expose_secret().to_owned();
    assert_problem(
        put(Some(&admin), policy(0, 70, 30, 20, false))
            .await
            .unwrap(),
        400,
        "INVALID_INPUT",
    )
    .await;
    let unknown = app
        .http
        .put(admin_url(&app, ConcertId::new(i64::MAX)))
        .bearer_auth(&admin)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_problem(unknown, 404, "CONCERT_NOT_FOUND").await;
    let public = app
        .http
        .put(app.url(&format!("/admin/concerts/{concert}/queue-policy")))
        .bearer_auth(&admin)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_problem(public, 404, "NOT_FOUND").await;

    put_policy(&app, concert, good).await;
    let body: Value = app
        .http
        .get(admin_url(&app, concert))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["isDefault"], false);
    assert_eq!(body["admitPerSecond"], 7);
    assert_eq!(body["shuffleAtOpen"], true);

    // A join registers the concert; the worker publishes the policy in force within seconds.
    let user = users(&app, 1).await.remove(0);
    join(&app, concert, &user).await;
    let worker = spawn_worker(&app.config).await;
    eventually("policy published", Duration::from_secs(3), || async {
        let s = state(&app, concert).await;
        field(&s, "policy_rate") == 7 && field(&s, "max_active") == 70
    })
    .await;
    put_policy(&app, concert, policy(9, 90, 30, 20, false)).await;
    eventually(
        "policy change published",
        Duration::from_secs(3),
        || async { field(&state(&app, concert).await, "policy_rate") == 9 },
    )
    .await;

    // The metrics of the room, per concert, on the admin port.
    let metrics = app
        .http
        .get(format!("http://{}/metrics", app.admin_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let label = format!("concert=\"{concert}\"");
    for name in [
        "boxoffice_queue_join_duration_seconds",
        "boxoffice_queue_joins_total",
        "boxoffice_queue_waiting",
        "boxoffice_queue_active",
        "boxoffice_queue_admitted_total",
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(name) && l.contains(&label)),
            "{name} for {concert} missing"
        );
    }
    worker.stop().await;
    app.stop().await;
}
