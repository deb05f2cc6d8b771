//! Concert listing and detail.

use std::collections::HashSet;

use serde_json::Value;

use crate::helpers::{
    assert_problem, create_concert, http_client, nginx_url, pg_pool, test_config, Sale,
};

#[tokio::test]
async fn an_unknown_concert_is_concert_not_found() {
    let (http, base) = (http_client(), nginx_url());
    let response = http
        .get(format!("{base}/api/v1/concerts/999999999"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "CONCERT_NOT_FOUND").await;
    let response = http
        .get(format!("{base}/api/v1/concerts/abc"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "INVALID_INPUT").await;
}

#[tokio::test]
async fn a_concert_shows_its_status_and_schedules() {
    let (http, base) = (http_client(), nginx_url());
    let pg = pg_pool(&test_config(&[])).await;
    let upcoming = create_concert(
        &pg,
        Sale::OpensAt(chrono::Utc::now() + chrono::Duration::days(3)),
        1,
        2,
        None,
    )
    .await;
    let body: Value = http
        .get(format!("{base}/api/v1/concerts/{}", upcoming.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["concertId"], upcoming.id.get());
    assert_eq!(body["status"], "UPCOMING");
    assert_eq!(body["schedules"][0]["scheduleId"], upcoming.schedule);
    let closed = create_concert(&pg, Sale::Closed, 1, 2, None).await;
    let body: Value = http
        .get(format!("{base}/api/v1/concerts/{}", closed.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "CLOSED");
}

/// Walks the whole list through nginx. Other tests add concerts while this runs, so the check
/// is: no concert twice, and every concert that was listable before the walk is seen.
#[tokio::test]
async fn paging_visits_every_listed_concert_exactly_once() {
    let (http, base) = (http_client(), nginx_url());
    let pg = pg_pool(&test_config(&[])).await;
    let closed = create_concert(&pg, Sale::Closed, 0, 0, None).await;
    let expected: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM concerts WHERE sale_closes_at > now() + interval '1 minute'",
    )
    .fetch_all(&pg)
    .await
    .unwrap();
    assert!(!expected.is_empty(), "the stack is seeded");

    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("{base}/api/v1/concerts?limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http.get(url).send().await.unwrap().json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            let id = item["concertId"].as_i64().unwrap();
            assert!(seen.insert(id), "concert {id} listed twice");
            assert_ne!(item["status"], "CLOSED");
        }
        pages += 1;
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10_000, "paging does not end");
    }
    let missing: Vec<&i64> = expected.iter().filter(|id| !seen.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} listable concerts never listed, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        !seen.contains(&closed.id.get()),
        "closed concerts are not listed"
    );
}

#[tokio::test]
async fn bad_paging_parameters_are_invalid_input() {
    let (http, base) = (http_client(), nginx_url());
    for query in ["limit=0", "limit=101", "limit=x", "cursor=garbage"] {
        let response = http
            .get(format!("{base}/api/v1/concerts?{query}"))
            .send()
            .await
            .unwrap();
        assert_problem(response, 400, "INVALID_INPUT").await;
    }
}
