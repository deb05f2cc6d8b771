//! Joining the waiting room: one gap-free place per user, however many join at once and
//! however often, and which concerts can be joined at all.

use std::collections::{HashMap, HashSet};

use chrono::Utc;

use super::*;

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
