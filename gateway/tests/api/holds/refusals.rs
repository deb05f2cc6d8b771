//! The holds refused before any seat is taken: over the ticket limit, outside the sale
//! window, without an ACTIVE session for the concert, or not a valid request.

use super::*;

#[tokio::test]
async fn a_user_holds_at_most_the_ticket_limit_per_schedule() {
    let config = test_config(&[("BOXOFFICE_TICKET_LIMIT", "4")]);
    let app = spawn_app_with(config).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 10, Some(100)).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let buyer = &buyers(&app, concert.id, 1).await[0];
    let (http, base) = (&app.http, app.url(""));
    hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "seatIds": &seats[0..3] }),
    )
    .await;
    let over = post_hold(
        http,
        &base,
        buyer,
        concert.schedule,
        json!({ "seatIds": &seats[3..5] }),
    )
    .await;
    let body = assert_problem(over, 422, "HOLD_LIMIT_EXCEEDED").await;
    assert!(body["detail"].as_str().unwrap().contains('4'), "{body}");
    let ga = json!({ "sectionId": concert.ga_section, "quantity": 2 });
    let over = post_hold(http, &base, buyer, concert.schedule, ga).await;
    assert_problem(over, 422, "HOLD_LIMIT_EXCEEDED").await;
    // The refused GA request gave its places back.
    let remaining = ga_remaining(&app, concert.id, concert.ga_section.unwrap()).await;
    assert_eq!(remaining, 100);
    hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "sectionId": concert.ga_section, "quantity": 1 }),
    )
    .await;
}

#[tokio::test]
async fn holds_are_refused_outside_the_sale_window() {
    let app = spawn_app_with(test_config(&[])).await;
    let upcoming = create_concert(
        &app.pg,
        Sale::OpensAt(chrono::Utc::now() + chrono::Duration::hours(2)),
        1,
        5,
        Some(10),
    )
    .await;
    let closed = create_concert(&app.pg, Sale::Closed, 1, 5, Some(10)).await;
    for concert in [upcoming, closed] {
        let buyer = &buyers(&app, concert.id, 1).await[0];
        let seat = seat_ids(&app.pg, concert.sections[0]).await[0];
        for body in [
            json!({ "seatIds": [seat] }),
            json!({ "sectionId": concert.ga_section, "quantity": 1 }),
        ] {
            let response = post_hold(&app.http, &app.url(""), buyer, concert.schedule, body).await;
            assert_problem(response, 403, "SALE_NOT_OPEN").await;
        }
    }
}

#[tokio::test]
async fn holding_needs_an_active_session_for_the_schedules_concert() {
    let app = spawn_app_with(test_config(&[])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, None).await;
    let other = create_concert(&app.pg, Sale::Open, 1, 5, None).await;
    let seat = seat_ids(&app.pg, concert.sections[0]).await[0];
    let mut buyer = buyers(&app, other.id, 1).await.remove(0);
    let body = json!({ "seatIds": [seat] });
    let wrong_concert = post_hold(
        &app.http,
        &app.url(""),
        &buyer,
        concert.schedule,
        body.clone(),
    )
    .await;
    assert_problem(wrong_concert, 403, "QUEUE_NOT_ACTIVE").await;
    buyer.queue_token = String::new();
    let no_queue_token = post_hold(
        &app.http,
        &app.url(""),
        &buyer,
        concert.schedule,
        body.clone(),
    )
    .await;
    assert_problem(no_queue_token, 403, "QUEUE_NOT_ACTIVE").await;
    let no_token = app
        .http
        .post(app.url(&format!("/api/v1/schedules/{}/holds", concert.schedule)))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(no_token, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn a_seat_outside_the_schedule_or_a_malformed_request_is_invalid_input() {
    let app = spawn_app_with(test_config(&[])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, Some(10)).await;
    let other = create_concert(&app.pg, Sale::Open, 1, 5, None).await;
    let foreign_seat = seat_ids(&app.pg, other.sections[0]).await[0];
    let buyer = &buyers(&app, concert.id, 1).await[0];
    for body in [
        json!({ "seatIds": [foreign_seat] }),
        json!({ "seatIds": [] }),
        json!({ "sectionId": concert.ga_section, "quantity": 0 }),
        json!({ "sectionId": concert.sections[0], "quantity": 1 }),
        json!({}),
    ] {
        let response = post_hold(&app.http, &app.url(""), buyer, concert.schedule, body).await;
        assert_problem(response, 400, "INVALID_INPUT").await;
    }
    let unknown_section = json!({ "sectionId": 999_999_999, "quantity": 1 });
    let response = post_hold(
        &app.http,
        &app.url(""),
        buyer,
        concert.schedule,
        unknown_section,
    )
    .await;
    assert_problem(response, 404, "SECTION_NOT_FOUND").await;
    let response = post_hold(
        &app.http,
        &app.url(""),
        buyer,
        999_999_999,
        json!({ "seatIds": [1] }),
    )
    .await;
    assert_problem(response, 404, "SCHEDULE_NOT_FOUND").await;
}
