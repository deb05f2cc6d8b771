//! The admitter: who goes in, in what order, at what rate, and the lease that keeps it to
//! one worker at a time; and the work list of rooms it ticks.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use boxoffice_domain::queue::QueueStatus;
use boxoffice_worker::{admission, startup::Worker};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::*;

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
    let registry = app
        .keys
        .registry(boxoffice_domain::redis::keys::Registry::Rooms);
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
