//! Charges: validation, idempotency and the ledger, through nginx.

use futures::{stream, StreamExt};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, http_client, nginx_url, pg_pool, sign_up, test_config, User};

async fn ledger_rows(pg: &sqlx::PgPool, user: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM point_ledger WHERE user_id = $1")
        .bind(user)
        .fetch_one(pg)
        .await
        .unwrap()
}

async fn charge(
    http: &reqwest::Client,
    base: &str,
    user: &User,
    body: Value,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = http
        .post(format!("{base}/api/v1/me/points/charges"))
        .header("authorization", user.bearer())
        .json(&body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn invalid_amounts_are_refused_and_leave_no_ledger_row() {
    let (http, base) = (http_client(), nginx_url());
    let pg = pg_pool(&test_config(&[])).await;
    let user = sign_up(&http, &base, "careful").await;
    let bad = [
        json!({ "amount": 0 }),
        json!({ "amount": -100 }),
        json!({ "amount": 1.5 }),
        json!({ "amount": "100" }),
        json!({ "amount": 1_000_001 }),
        json!({ "amount": 1e20 }),
        json!({ "amount": null }),
        json!({}),
    ];
    for body in bad {
        let response = charge(&http, &base, &user, body.clone(), None).await;
        assert_problem(response, 400, "INVALID_AMOUNT").await;
    }
    assert_eq!(ledger_rows(&pg, user.id).await, 0);
}

#[tokio::test]
async fn a_charge_retried_concurrently_with_one_key_is_applied_once_with_one_answer() {
    let (http, base) = (http_client(), nginx_url());
    let pg = pg_pool(&test_config(&[])).await;
    let user = sign_up(&http, &base, "double-clicker").await;

    let responses: Vec<(u16, Value)> = stream::iter(0..50)
        .map(|_| {
            let (http, base, user) = (http.clone(), base.clone(), user.clone());
            async move {
                let response = charge(
                    &http,
                    &base,
                    &user,
                    json!({ "amount": 700 }),
                    Some("charge-once"),
                )
                .await;
                (
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap(),
                )
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;

    assert!(
        responses.iter().all(|(status, _)| *status == 200),
        "{responses:?}"
    );
    assert!(
        responses
            .iter()
            .all(|(_, body)| *body == json!({ "userId": user.id, "balance": 700 })),
        "{responses:?}"
    );
    assert_eq!(ledger_rows(&pg, user.id).await, 1);
}

#[tokio::test]
async fn reusing_an_idempotency_key_for_another_amount_is_refused() {
    let (http, base) = (http_client(), nginx_url());
    let user = sign_up(&http, &base, "reuser").await;
    assert_eq!(
        charge(&http, &base, &user, json!({ "amount": 10 }), Some("k1"))
            .await
            .status(),
        200
    );
    let response = charge(&http, &base, &user, json!({ "amount": 20 }), Some("k1")).await;
    assert_problem(response, 422, "IDEMPOTENCY_KEY_REUSED").await;
}

#[tokio::test]
async fn concurrent_charges_over_many_users_leave_every_balance_equal_to_its_ledger() {
    let (http, base) = (http_client(), nginx_url());
    let pg = pg_pool(&test_config(&[])).await;
    let mut users = Vec::new();
    for i in 0..100 {
        users.push(sign_up(&http, &base, &format!("crowd-{i}")).await);
    }
    // 1,000 charges, 10 per user, amounts 1..=10, all in flight together.
    let results: Vec<(i64, i64, u16)> = stream::iter(0..1000)
        .map(|i| {
            let user = users[i % users.len()].clone();
            let amount = (i / users.len() + 1) as i64;
            let (http, base) = (http.clone(), base.clone());
            async move {
                let status = charge(&http, &base, &user, json!({ "amount": amount }), None)
                    .await
                    .status()
                    .as_u16();
                (user.id, amount, status)
            }
        })
        .buffer_unordered(200)
        .collect()
        .await;
    assert!(
        results.iter().all(|(_, _, status)| *status == 200),
        "every charge succeeds"
    );

    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let rows: Vec<(i64, i64, Option<i64>)> = sqlx::query_as(
        "SELECT b.user_id, b.balance, (SELECT sum(delta)::bigint FROM point_ledger l WHERE l.user_id = b.user_id) \
         FROM point_balances b WHERE b.user_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&pg)
    .await
    .unwrap();
    assert_eq!(rows.len(), 100);
    for (user, balance, ledger) in rows {
        assert_eq!(
            Some(balance),
            ledger,
            "user {user}: balance differs from its ledger"
        );
        assert_eq!(balance, 55, "user {user}: 1 + 2 + ... + 10");
    }
}
