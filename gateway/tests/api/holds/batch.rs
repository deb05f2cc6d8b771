//! Holds sent to Redis in one call (`holds::batch`): each decided as if it came alone, in
//! order, the ticket limit included.

use super::*;

/// A replica sends its concurrent holds of a schedule to Redis in one call (`holds::batch`).
/// Within a call each hold is decided as if it came alone, in order: a set of seats is held
/// whole or not at all and sees what the sets before it took, and each general-admission hold
/// is taken from the counter or given back before the next one.
#[tokio::test]
async fn holds_sent_in_one_call_are_each_decided_alone_in_order() {
    use boxoffice_domain::{
        holds::redis::{hold_general, hold_seats, PlacesWanted, SeatsWanted},
        ids::{ScheduleId, SeatId, SectionId},
        Error,
    };
    let app = spawn_app().await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, Some(3)).await;
    let [a, b, c] = &buyers(&app, concert.id, 3).await[..] else {
        unreachable!()
    };
    let seats: Vec<SeatId> = seat_ids(&app.pg, concert.sections[0])
        .await
        .into_iter()
        .map(SeatId::new)
        .collect();
    let ga = SectionId::new(concert.ga_section.unwrap());
    // Loads the schedule's inventory (and takes seat 4 for a).
    hold_ok(
        &app,
        a,
        concert.schedule,
        json!({ "seatIds": [seats[4].get()] }),
    )
    .await;
    let (store, schedule) = (app.state.store(), ScheduleId::new(concert.schedule));
    let user = |b: &crate::helpers::Buyer| boxoffice_domain::ids::UserId::new(b.user.id);
    let ids: Vec<HoldId> = (0..3).map(|_| HoldId::generate(concert.id)).collect();

    let wanted = [
        (ids[0], a, &seats[0..2]),
        // Overlaps the first set (seat 1): refused whole, so seat 2 stays free.
        (ids[1], b, &seats[1..3]),
        (ids[2], c, &seats[2..4]),
    ]
    .map(|(hold, buyer, seats)| SeatsWanted {
        hold,
        user: user(buyer),
        amount: 100,
        seats,
    });
    let placed = hold_seats(store.hot, store.terms(), concert.id, schedule, &wanted)
        .await
        .unwrap();
    assert!(matches!(placed[0], Ok(Some(_))), "{:?}", placed[0]);
    assert!(
        matches!(placed[1], Err(Error::SeatUnavailable)),
        "{:?}",
        placed[1]
    );
    assert!(matches!(placed[2], Ok(Some(_))), "{:?}", placed[2]);
    let owners: HashMap<String, String> = app
        .redis
        .hgetall(app.keys.seat_owners(concert.id, schedule))
        .await
        .unwrap();
    let owner = |i: usize| owners.get(&seats[i].to_string()).cloned();
    assert_eq!(
        (0..4).map(owner).collect::<Vec<_>>(),
        [ids[0], ids[0], ids[2], ids[2]].map(|h| Some(h.to_string()))
    );

    // Three places: 2 fit, the next 2 do not (given back at once), the last 1 fits.
    let wanted = [(b, 2), (c, 2), (a, 1)].map(|(buyer, quantity)| PlacesWanted {
        hold: HoldId::generate(concert.id),
        user: user(buyer),
        quantity,
        amount: 50 * i64::from(quantity),
    });
    let placed = hold_general(store.hot, store.terms(), concert.id, schedule, ga, &wanted)
        .await
        .unwrap();
    assert!(matches!(placed[0], Ok(Some(_))), "{:?}", placed[0]);
    assert!(matches!(placed[1], Err(Error::SoldOut)), "{:?}", placed[1]);
    assert!(matches!(placed[2], Ok(Some(_))), "{:?}", placed[2]);
    assert_eq!(ga_remaining(&app, concert.id, ga.get()).await, 0);
}

/// A batch's general-admission holds share one `DECRBY` of their total: each is still held
/// only within its user's ticket limit, counting that user's holds earlier in the same call,
/// and the refused ones' places go back to the counter.
#[tokio::test]
async fn general_admission_holds_in_one_call_keep_each_users_ticket_limit() {
    use boxoffice_domain::{
        holds::redis::{hold_general, PlacesWanted},
        ids::{ScheduleId, SectionId, UserId},
        Error,
    };
    let app = spawn_app_with(test_config(&[("BOXOFFICE_TICKET_LIMIT", "4")])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, Some(100)).await;
    let [a, b] = &buyers(&app, concert.id, 2).await[..] else {
        unreachable!()
    };
    let ga = SectionId::new(concert.ga_section.unwrap());
    // Loads the schedule's inventory with a first hold of 1 for b.
    hold_ok(
        &app,
        b,
        concert.schedule,
        json!({ "sectionId": ga.get(), "quantity": 1 }),
    )
    .await;
    let wanted = [(a, 3), (a, 2), (b, 3), (b, 1), (a, 1)].map(|(buyer, quantity)| PlacesWanted {
        hold: HoldId::generate(concert.id),
        user: UserId::new(buyer.user.id),
        quantity,
        amount: 50 * i64::from(quantity),
    });
    let schedule = ScheduleId::new(concert.schedule);
    let store = app.state.store();
    let placed = hold_general(store.hot, store.terms(), concert.id, schedule, ga, &wanted)
        .await
        .unwrap();
    let outcome: Vec<&str> = placed
        .iter()
        .map(|p| match p {
            Ok(Some(_)) => "held",
            Err(Error::HoldLimitExceeded { .. }) => "over limit",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        outcome,
        ["held", "over limit", "held", "over limit", "held"]
    );
    assert_eq!(
        ga_remaining(&app, concert.id, ga.get()).await,
        100 - 1 - 3 - 3 - 1
    );
    let tickets: HashMap<String, i64> = app
        .redis
        .hgetall(app.keys.user_tickets(concert.id, schedule))
        .await
        .unwrap();
    assert_eq!(tickets[&a.user.id.to_string()], 4);
    assert_eq!(tickets[&b.user.id.to_string()], 4);
}
