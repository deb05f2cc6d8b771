//! The queue token and the guard of the ACTIVE endpoints: a session that ended is refused
//! everywhere at once, and a token that is not genuine, not current or not the caller's opens
//! nothing.

use std::{
    cell::RefCell,
    time::{Duration, Instant},
};

use axum::{extract::FromRequestParts, response::IntoResponse};
use boxoffice_domain::{
    queue::{self, token::QueueClaims, QueueStatus},
    tokens::now_secs,
};
use boxoffice_gateway::extract::Admitted;

use super::*;

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
            queue::end_session(&a.state.hot, concert, UserId::new(user.id))
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
