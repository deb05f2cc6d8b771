//! Release: the owner's release frees the seats and places at once; anyone else's hold does
//! not exist for them.

use super::*;

#[tokio::test]
async fn releasing_frees_the_seats_and_another_users_hold_is_not_found() {
    let app = spawn_app_with(test_config(&[])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, Some(10)).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let [owner, stranger] = &buyers(&app, concert.id, 2).await[..] else {
        unreachable!()
    };
    let hold = hold_ok(
        &app,
        owner,
        concert.schedule,
        json!({ "seatIds": &seats[0..2] }),
    )
    .await;
    let id = hold["holdId"].as_str().unwrap();
    let delete = |user: &crate::helpers::User, id: String| {
        app.http
            .delete(app.url(&format!("/api/v1/holds/{id}")))
            .header("authorization", user.bearer())
            .send()
    };
    // Another user's hold does not exist for them, on release and on payment.
    assert_problem(
        delete(&stranger.user, id.to_owned()).await.unwrap(),
        404,
        "HOLD_NOT_FOUND",
    )
    .await;
    charge(&app, &stranger.user, 1_000).await;
    let theirs = pay(&app.http, &app.url(""), &stranger.user, id, "steal").await;
    assert_problem(theirs, 404, "HOLD_NOT_FOUND").await;
    assert_problem(
        delete(&owner.user, HoldId::generate(concert.id).to_string())
            .await
            .unwrap(),
        404,
        "HOLD_NOT_FOUND",
    )
    .await;
    assert_problem(
        delete(&owner.user, "not-a-hold".into()).await.unwrap(),
        404,
        "HOLD_NOT_FOUND",
    )
    .await;
    // The owner releases; releasing again is harmless; the seats are free at once.
    assert_eq!(
        delete(&owner.user, id.to_owned()).await.unwrap().status(),
        204
    );
    assert_eq!(
        delete(&owner.user, id.to_owned()).await.unwrap().status(),
        204
    );
    hold_ok(
        &app,
        stranger,
        concert.schedule,
        json!({ "seatIds": &seats[0..2] }),
    )
    .await;
    // A released GA hold gives its places back.
    let ga = hold_ok(
        &app,
        owner,
        concert.schedule,
        json!({ "sectionId": concert.ga_section, "quantity": 3 }),
    )
    .await;
    assert_eq!(
        delete(&owner.user, ga["holdId"].as_str().unwrap().to_owned())
            .await
            .unwrap()
            .status(),
        204
    );
    let remaining = ga_remaining(&app, concert.id, concert.ga_section.unwrap()).await;
    assert_eq!(remaining, 10);
}
