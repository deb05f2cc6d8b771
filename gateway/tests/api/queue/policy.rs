//! The queue policy, set through the admin port only and published by the worker, and the
//! room's metrics.

use std::time::Duration;

use super::*;

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
