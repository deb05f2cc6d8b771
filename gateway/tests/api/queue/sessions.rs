//! ACTIVE capacity: never more than `maxActive` at once, and what frees a place: a session
//! that expires, a user who leaves, a waiting user who stopped polling.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chrono::Utc;

use super::*;

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
