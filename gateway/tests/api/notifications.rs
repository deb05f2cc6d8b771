//! Notifications: each confirmed reservation reaches the webhook once, off the request path,
//! after the receiver's failures are retried with backoff.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, http::StatusCode, routing::post, Json, Router};
use serde_json::{json, Value};

use crate::helpers::{
    buyers, charge, create_concert, eventually, hold_ok, pay, seat_ids, spawn_app_with,
    spawn_worker, test_config, Sale,
};

/// A local webhook receiver: refuses the first `fail_first` deliveries of each reservation it
/// is told to watch, accepts the rest, and records what it accepted. Deliveries of other
/// tests' reservations (the outbox is shared) are accepted and ignored.
#[derive(Clone, Default)]
pub(crate) struct Receiver {
    /// Deliveries received so far, by watched reservation.
    pub(crate) watched: Arc<Mutex<HashMap<String, u32>>>,
    /// Deliveries accepted: the reservation and the body.
    pub(crate) accepted: Arc<Mutex<Vec<(String, Value)>>>,
    pub(crate) fail_first: u32,
}

impl Receiver {
    /// Serves this receiver on a port of its own; returns its URL.
    pub(crate) async fn listen(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let router = Router::new()
            .route("/hook", post(receive))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        url
    }

    /// Makes the receiver watch (count and record) the deliveries of `reservation`.
    pub(crate) fn watch(&self, reservation: &str) {
        self.watched
            .lock()
            .unwrap()
            .insert(reservation.to_owned(), 0);
    }
}

async fn receive(State(receiver): State<Receiver>, Json(body): Json<Value>) -> StatusCode {
    let Some(reservation) = body["reservationId"].as_str().map(str::to_owned) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut watched = receiver.watched.lock().unwrap();
    let Some(attempts) = watched.get_mut(&reservation) else {
        return StatusCode::OK;
    };
    *attempts += 1;
    if *attempts <= receiver.fail_first {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    receiver.accepted.lock().unwrap().push((reservation, body));
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_confirmed_reservation_is_delivered_once_after_the_receivers_failures() {
    let receiver = Receiver {
        fail_first: 2,
        ..Receiver::default()
    };
    let url = receiver.listen().await;

    let config = test_config(&[
        ("BOXOFFICE_WEBHOOK_URL", url.as_str()),
        ("BOXOFFICE_NOTIFY_BACKOFF_MS", "50"),
        ("BOXOFFICE_NOTIFY_BACKOFF_CAP_MS", "200"),
        ("BOXOFFICE_TICK_MS", "20"),
    ]);
    let app = spawn_app_with(config.clone()).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, Some(10)).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let buyers = buyers(&app, concert.id, 3).await;
    let mut expected = HashMap::new();
    for (i, buyer) in buyers.iter().enumerate() {
        charge(&app, &buyer.user, 1_000).await;
        let body = if i == 2 {
            json!({ "sectionId": concert.ga_section, "quantity": 2 })
        } else {
            json!({ "seatIds": [seats[i]] })
        };
        let hold = hold_ok(&app, buyer, concert.schedule, body).await;
        let response = pay(
            &app.http,
            &app.url(""),
            &buyer.user,
            hold["holdId"].as_str().unwrap(),
            "k",
        )
        .await;
        assert_eq!(
            response.status(),
            201,
            "payment is answered without waiting for delivery"
        );
        let paid: Value = response.json().await.unwrap();
        let reservation = paid["reservationId"].as_str().unwrap().to_owned();
        receiver.watch(&reservation);
        expected.insert(reservation, (buyer.user.id, hold));
    }
    let worker = spawn_worker(&config).await;
    eventually(
        "every reservation is delivered",
        Duration::from_secs(30),
        || async { receiver.accepted.lock().unwrap().len() >= expected.len() },
    )
    .await;
    // Accepted deliveries are marked in the outbox, so none of these rows is due again.
    eventually("the outbox marks them delivered", Duration::from_secs(10), || async {
        let ids: Vec<String> = expected.keys().cloned().collect();
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE payload->>'reservationId' = ANY($1) AND delivered_at IS NULL",
        )
        .bind(&ids)
        .fetch_one(&app.pg)
        .await
        .unwrap();
        pending == 0
    })
    .await;
    worker.stop().await;
    let accepted = receiver.accepted.lock().unwrap().clone();
    assert_eq!(
        accepted.len(),
        expected.len(),
        "each reservation accepted exactly once"
    );
    for (reservation, body) in &accepted {
        let (user, hold) = &expected[reservation];
        assert_eq!(body["userId"], *user);
        assert_eq!(body["holdId"], hold["holdId"]);
        assert_eq!(body["amount"], hold["amount"]);
        assert_eq!(body["quantity"], hold["quantity"]);
        assert_eq!(body["scheduleId"], concert.schedule);
    }
    let attempts = receiver.watched.lock().unwrap().clone();
    assert!(
        attempts.values().all(|n| *n == 3),
        "two refusals, then one success: {attempts:?}"
    );
    let failures: Vec<i32> =
        sqlx::query_scalar("SELECT attempts FROM outbox WHERE payload->>'reservationId' = ANY($1)")
            .bind(expected.keys().cloned().collect::<Vec<_>>())
            .fetch_all(&app.pg)
            .await
            .unwrap();
    assert_eq!(failures, vec![2, 2, 2]);
}
