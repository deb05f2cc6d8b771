//! Bad requests get a clear problem+json and change nothing; the ops endpoints behave.

use serde_json::json;

use crate::helpers::{
    assert_problem, http_client, nginx_url, sign_up, spawn_app_with, test_config,
};

#[tokio::test]
async fn malformed_json_wrong_content_type_and_oversized_bodies_are_refused() {
    let (http, base) = (http_client(), nginx_url());
    let user = sign_up(&http, &base, "sloppy").await;
    let url = format!("{base}/api/v1/me/points/charges");

    let response = http
        .post(&url)
        .header("authorization", user.bearer())
        .header("content-type", "application/json")
        .body("{\"amount\": 10")
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "INVALID_INPUT").await;

    let response = http
        .post(&url)
        .header("authorization", user.bearer())
        .header("content-type", "text/plain")
        .body("{\"amount\": 10}")
        .send()
        .await
        .unwrap();
    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE").await;

    let huge = format!("{{\"amount\": 10, \"pad\": \"{}\"}}", "x".repeat(64 * 1024));
    let response = http
        .post(&url)
        .header("authorization", user.bearer())
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE").await;

    let balance: serde_json::Value = http
        .get(format!("{base}/api/v1/me/points"))
        .header("authorization", user.bearer())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        balance["balance"], 0,
        "no refused request changed the balance"
    );
}

#[tokio::test]
async fn a_body_over_the_gateway_limit_is_refused_by_the_gateway_too() {
    let app = spawn_app_with(test_config(&[("BOXOFFICE_BODY_LIMIT_BYTES", "64")])).await;
    let response = app
        .http
        .post(app.url("/api/v1/users"))
        .json(&json!({ "name": "x".repeat(200) }))
        .send()
        .await
        .unwrap();
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE").await;
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problems() {
    let (http, base) = (http_client(), nginx_url());
    let response = http
        .get(format!("{base}/api/v1/nope"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "NOT_FOUND").await;
    let response = http
        .get(format!("{base}/definitely/not/here"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "NOT_FOUND").await;
    let response = http
        .delete(format!("{base}/api/v1/concerts"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 405, "METHOD_NOT_ALLOWED").await;
}

#[tokio::test]
async fn metrics_are_served_on_the_admin_port_and_not_through_nginx() {
    let app = spawn_app_with(test_config(&[])).await;
    assert_eq!(
        app.http
            .get(app.url("/hello"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = app
        .http
        .get(format!("http://{}/metrics", app.admin_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("boxoffice_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("route=\"/hello\""));
    app.stop().await;

    let response = http_client()
        .get(format!("{}/metrics", nginx_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_user_over_the_rate_limit_gets_429_with_retry_after() {
    let app = spawn_app_with(test_config(&[
        ("BOXOFFICE_USER_RATE_PER_SEC", "1"),
        ("BOXOFFICE_USER_RATE_BURST", "3"),
    ]))
    .await;
    let user = sign_up(&app.http, &app.url(""), "hammer").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = app
            .http
            .get(app.url("/api/v1/me/points"))
            .header("authorization", user.bearer())
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert_eq!(response.headers()["retry-after"], "1");
            assert_problem(response, 429, "RATE_LIMITED").await;
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "the burst passes");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    app.stop().await;
}

#[tokio::test]
async fn readyz_is_503_when_postgres_is_unreachable() {
    let app = spawn_app_with(test_config(&[(
        "BOXOFFICE_DATABASE_URL",
        "postgres://boxoffice:boxoffice@127.0.0.1:1/boxoffice",
    )]))
    .await;
    let response = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let response = app
        .http
        .get(app.url("/api/v1/concerts"))
        .send()
        .await
        .unwrap();
    let body = assert_problem(response, 503, "UNAVAILABLE").await;
    assert!(
        !body["detail"].as_str().unwrap().contains("127.0.0.1"),
        "5xx bodies stay opaque"
    );
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let (http, base) = (http_client(), nginx_url());
    let response = http
        .get(format!("{base}/api/v1/concerts?limit=1"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let response = http
        .get(format!("{base}/api/v1/concerts?limit=1"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("x-request-id"));
}
