//! `boxoffice-worker audit`: checks the sales and money invariants after a load test (or at
//! any time) and prints one PASS/FAIL line per check, then a verdict. Exits non-zero when any
//! check fails. A failed check names up to [`SAMPLE`] offending rows by id (`seat 17`), so an
//! operator can look; each step's progress and elapsed time go to stderr.
//!
//! Postgres is the truth, so the first checks are the brief's invariants 1 and 4 as the
//! database sees them:
//!
//! - every confirmed reservation has exactly one payment, and the payment matches it (hold,
//!   user, amount); seated reservations have one item per ticket, GA reservations none;
//! - no seat is sold twice (also enforced by `reservation_items.seat_id UNIQUE`), and a sold
//!   seat belongs to its reservation's schedule;
//! - a section never sells over its capacity; a GA section's `sold` counter equals the tickets
//!   in its reservations (seated sections leave it at 0: their seats sold are the items);
//! - every balance equals the sum of its ledger, no balance is negative, and each payment is
//!   exactly one `PAYMENT` ledger row of minus its amount;
//! - every reservation's hold is mirrored in `holds` as `PAID` (written by the stream sink, so
//!   this check is retried for a few seconds while the sink catches up).
//!
//! Then Redis against Postgres ([`redis_checks`]), for every schedule whose inventory Redis
//! has loaded: the live holds, the seat owners, the GA counters and the per-user ticket counts
//! must be exactly what Postgres's reservations and live holds imply. Run it on a quiet
//! system: a payment or an expiry in flight is a legitimate moment of disagreement, so these
//! checks too are retried for a few seconds before they fail.
//!
//! A live hold in Postgres is one the rest of the system treats as live: `HELD` and not past
//! its expiry (what `holds::pg::snapshot` loads into Redis and `holds::pg::settled` lets a
//! payment restore). A `HELD` row past its expiry is expected in Redis only while Redis still
//! lists it (not swept yet, or being paid); absent, it is over. Such rows stay `HELD` for good
//! when Redis lost its data before the sweep could end them (a `FLUSHALL`, a Redis killed
//! without persistence): nothing but the sweep of Redis's expiry set writes `EXPIRED`. Counting
//! them reported every one of them missing from Redis, and their seats, GA places and tickets
//! with them, as soon as the schedule was loaded again after they expired.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use anyhow::Context;
use boxoffice_domain::{
    ids::{ConcertId, HoldId, ScheduleId, SectionId},
    redis::Keys,
    Config,
};
use fred::prelude::*;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{progress::Step, startup};

/// How often a check that can be caught mid-flight is evaluated, one second apart, before it
/// counts as failed.
const SETTLE_ATTEMPTS: usize = 6;

/// How many offending rows a failed check names: enough for an operator to start looking, few
/// enough for one report line. Every check's SQL says `LIMIT 5` (a unit test keeps them equal).
pub const SAMPLE: usize = 5;

/// One Postgres invariant: a query returning `(violations BIGINT, checked BIGINT, offenders
/// TEXT[])`, the last naming up to [`SAMPLE`] offending rows by id, such as `seat 17`.
pub struct Check {
    pub name: &'static str,
    /// What `checked` counts, for the report line.
    pub unit: &'static str,
    pub sql: &'static str,
    /// Depends on the worker's stream sink, which lags the API by up to a few ticks: retried.
    pub settles: bool,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub name: &'static str,
    pub unit: &'static str,
    pub violations: i64,
    pub checked: i64,
    /// Up to [`SAMPLE`] offending rows (or Redis keys), each a kind and an id (`seat 17`),
    /// so an operator can look them up. Empty when the check passed.
    pub offenders: Vec<String>,
}

// The checks come in two shapes. One population, each row good or bad: an `audited (id, bad)`
// CTE, counted with FILTER and sampled by id. Two populations (a reservation without payment,
// a payment without reservation): a `bad (id)` CTE of labels, `UNION ALL` so that counts stay
// per row, sampled by label; `length` first sorts `seat 9` before `seat 10`.
pub const CHECKS: &[Check] = &[
    Check {
        name: "every confirmed reservation has exactly one payment",
        unit: "reservations",
        sql: "WITH bad AS (
                SELECT 'reservation ' || r.id AS id FROM reservations r
                 WHERE NOT EXISTS (SELECT 1 FROM payments p WHERE p.reservation_id = r.id)
                UNION ALL
                SELECT 'payment ' || p.id FROM payments p
                 WHERE NOT EXISTS (SELECT 1 FROM reservations r WHERE r.id = p.reservation_id))
              SELECT (SELECT count(*) FROM bad), (SELECT count(*) FROM reservations),
                     ARRAY(SELECT id FROM bad ORDER BY length(id), id LIMIT 5)",
        settles: false,
    },
    Check {
        name: "each payment matches its reservation (hold, user, amount)",
        unit: "payments",
        sql: "WITH audited AS (
                SELECT p.id, (p.hold_id <> r.hold_id OR p.user_id <> r.user_id
                              OR p.amount <> r.amount) AS bad
                  FROM payments p JOIN reservations r ON r.id = p.reservation_id)
              SELECT count(*) FILTER (WHERE bad), count(*),
                     ARRAY(SELECT 'payment ' || id FROM audited WHERE bad ORDER BY id LIMIT 5)
                FROM audited",
        settles: false,
    },
    Check {
        name: "sold seats = reservation items (one per seated ticket, none for GA)",
        unit: "reservations",
        sql: "WITH audited AS (
                SELECT r.id, CASE WHEN s.kind = 'GA' THEN coalesce(i.n, 0) <> 0
                                  ELSE coalesce(i.n, 0) <> r.quantity END AS bad
                  FROM reservations r
                  LEFT JOIN sections s ON s.id = r.section_id
                  LEFT JOIN (SELECT reservation_id, count(*) AS n FROM reservation_items
                              GROUP BY reservation_id) i ON i.reservation_id = r.id)
              SELECT count(*) FILTER (WHERE bad), count(*),
                     ARRAY(SELECT 'reservation ' || id FROM audited WHERE bad ORDER BY id LIMIT 5)
                FROM audited",
        settles: false,
    },
    Check {
        name: "no seat sold twice",
        unit: "sold seats",
        sql: "WITH audited AS (
                SELECT seat_id AS id, count(*) > 1 AS bad FROM reservation_items GROUP BY seat_id)
              SELECT count(*) FILTER (WHERE bad), count(*),
                     ARRAY(SELECT 'seat ' || id FROM audited WHERE bad ORDER BY id LIMIT 5)
                FROM audited",
        settles: false,
    },
    Check {
        name: "every sold seat belongs to its reservation's schedule",
        unit: "sold seats",
        sql: "WITH audited AS (
                SELECT i.seat_id AS id, se.schedule_id <> r.schedule_id AS bad
                  FROM reservation_items i
                  JOIN seats se ON se.id = i.seat_id
                  JOIN reservations r ON r.id = i.reservation_id)
              SELECT count(*) FILTER (WHERE bad), count(*),
                     ARRAY(SELECT 'seat ' || id FROM audited WHERE bad ORDER BY id LIMIT 5)
                FROM audited",
        settles: false,
    },
    Check {
        name: "no GA section over capacity; sold = tickets in its reservations",
        unit: "GA sections",
        sql: "WITH audited AS (
                SELECT s.id, (s.sold > s.capacity OR coalesce(t.n, 0) > s.capacity
                              OR s.sold <> coalesce(t.n, 0)) AS bad
                  FROM sections s
                  LEFT JOIN (SELECT section_id, sum(quantity)::bigint AS n FROM reservations
                              WHERE section_id IS NOT NULL GROUP BY section_id) t
                         ON t.section_id = s.id
                 WHERE s.kind = 'GA')
              SELECT count(*) FILTER (WHERE bad), count(*),
                     ARRAY(SELECT 'section ' || id FROM audited WHERE bad ORDER BY id LIMIT 5)
                FROM audited",
        settles: false,
    },
    Check {
        // Seated sections keep `sold` at 0 (see `payments::pg::record`): their sales are their
        // reservation items, which must fit the section.
        name: "seated sections: sold seats within capacity, counter unused (0)",
        unit: "seated sections",
        sql: "WITH audited AS (
                SELECT s.id, (s.sold <> 0 OR coalesce(t.n, 0) > s.capacity) AS bad
                  FROM sections s
                  LEFT JOIN (SELECT se.section_id, count(*) AS n FROM reservation_items i
                               JOIN seats se ON se.id = i.seat_id GROUP BY se.section_id) t
                         ON t.section_id = s.id
                 WHERE s.kind = 'SEATED')
              SELECT count(*) FILTER (WHERE bad), count(*),
                     ARRAY(SELECT 'section ' || id FROM audited WHERE bad ORDER BY id LIMIT 5)
                FROM audited",
        settles: false,
    },
    Check {
        name: "every balance = the sum of its ledger",
        unit: "users",
        sql: "WITH audited AS (
                SELECT coalesce(b.user_id, l.user_id) AS id,
                       coalesce(b.balance, 0) <> coalesce(l.total, 0) AS bad
                  FROM point_balances b
                  FULL JOIN (SELECT user_id, sum(delta)::bigint AS total FROM point_ledger
                              GROUP BY user_id) l ON l.user_id = b.user_id)
              SELECT count(*) FILTER (WHERE bad), count(*),
                     ARRAY(SELECT 'user ' || id FROM audited WHERE bad ORDER BY id LIMIT 5)
                FROM audited",
        settles: false,
    },
    Check {
        name: "no negative balance",
        unit: "balances",
        sql: "WITH audited AS (SELECT user_id AS id, balance < 0 AS bad FROM point_balances)
              SELECT count(*) FILTER (WHERE bad), count(*),
                     ARRAY(SELECT 'user ' || id FROM audited WHERE bad ORDER BY id LIMIT 5)
                FROM audited",
        settles: false,
    },
    Check {
        name: "each payment is one PAYMENT ledger row of -amount (charged once)",
        unit: "payments",
        sql: "WITH bad AS (
                SELECT 'payment ' || p.id AS id FROM payments p
                  LEFT JOIN (SELECT payment_id, count(*) AS n, sum(delta)::bigint AS total
                               FROM point_ledger WHERE reason = 'PAYMENT' GROUP BY payment_id) l
                         ON l.payment_id = p.id
                 WHERE coalesce(l.n, 0) <> 1 OR coalesce(l.total, 0) <> -p.amount
                UNION ALL
                SELECT 'ledger row ' || l.id FROM point_ledger l
                 WHERE l.reason = 'PAYMENT'
                   AND (l.payment_id IS NULL
                        OR NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = l.payment_id)))
              SELECT (SELECT count(*) FROM bad), (SELECT count(*) FROM payments),
                     ARRAY(SELECT id FROM bad ORDER BY length(id), id LIMIT 5)",
        settles: false,
    },
    Check {
        name: "every reservation's hold is mirrored as PAID, and only those",
        unit: "reservations",
        sql: "WITH bad AS (
                SELECT 'hold ' || r.hold_id AS id FROM reservations r
                  LEFT JOIN holds h ON h.id = r.hold_id
                 WHERE h.id IS NULL OR h.status <> 'PAID'
                UNION ALL
                SELECT 'hold ' || h.id FROM holds h
                 WHERE h.status = 'PAID'
                   AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.hold_id = h.id))
              SELECT (SELECT count(*) FROM bad), (SELECT count(*) FROM reservations),
                     ARRAY(SELECT id FROM bad ORDER BY length(id), id LIMIT 5)",
        settles: true,
    },
    Check {
        // The mirror has no foreign keys (they cost the sink most of its Postgres time; see
        // migrations/20261130000001): this is what they guarded, and a little more.
        name: "every mirrored hold names its user, schedule, section and seats as they exist",
        unit: "holds",
        sql: "WITH bad AS (
                SELECT 'hold ' || h.id AS id FROM holds h
                 WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = h.user_id)
                    OR NOT EXISTS (SELECT 1 FROM schedules s WHERE s.id = h.schedule_id)
                    OR (h.section_id IS NOT NULL AND NOT EXISTS (
                          SELECT 1 FROM sections x
                           WHERE x.id = h.section_id AND x.schedule_id = h.schedule_id))
                UNION ALL
                SELECT 'hold ' || hs.hold_id || ' seat ' || hs.seat_id FROM hold_seats hs
                 WHERE NOT EXISTS (
                   SELECT 1 FROM holds h JOIN seats s ON s.schedule_id = h.schedule_id
                    WHERE h.id = hs.hold_id AND s.id = hs.seat_id))
              SELECT (SELECT count(*) FROM bad), (SELECT count(*) FROM holds),
                     ARRAY(SELECT id FROM bad ORDER BY length(id), id LIMIT 5)",
        settles: false,
    },
];

/// Runs the audit: every Postgres check, then Redis against Postgres. The report goes to
/// stdout; each step's progress to stderr.
pub async fn run(config: &Config) -> anyhow::Result<()> {
    let step = Step::start("audit", "connecting to Postgres");
    let pg = startup::pg_pool(config).await?;
    step.done("connected");
    println!(
        "audit: Postgres invariants (brief §2: 1 no oversell, 4 money is exact, 5 nothing lost)"
    );
    let mut outcomes = Vec::new();
    for (i, check) in CHECKS.iter().enumerate() {
        let step = Step::start(
            "audit",
            format!("check {}/{}: {}", i + 1, CHECKS.len(), check.name),
        );
        let outcome = postgres_check(&pg, check).await?;
        step.done(verdict(&outcome));
        print(&outcome);
        outcomes.push(outcome);
    }
    let step = Step::start("audit", "finding the schedules Redis has loaded");
    let redis = boxoffice_domain::redis::connect(&config.redis_url, 2)
        .await
        .context("connecting to Redis")?;
    let keys = Keys::new(&config.redis_namespace);
    let schedules = loaded_schedules(&pg, &redis, &keys).await?;
    step.done(format_args!("{} schedules", schedules.len()));
    println!(
        "audit: Redis inventory against Postgres ({} schedules loaded in Redis)",
        schedules.len()
    );
    let step = Step::start("audit", "comparing Redis with Postgres");
    let compared = redis_checks(&pg, &redis, &keys, &schedules).await?;
    let failed = compared.iter().filter(|o| o.violations != 0).count();
    step.done(if failed == 0 { "PASS" } else { "FAIL" });
    for outcome in compared {
        print(&outcome);
        outcomes.push(outcome);
    }
    pg.close().await;
    let failed = outcomes.iter().filter(|o| o.violations != 0).count();
    if failed > 0 {
        anyhow::bail!("audit FAILED: {failed} of {} checks", outcomes.len());
    }
    println!("audit PASSED: {} checks", outcomes.len());
    Ok(())
}

fn verdict(o: &Outcome) -> &'static str {
    if o.violations == 0 {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Prints the report line of one check; a failed one ends with the rows it names.
fn print(o: &Outcome) {
    println!(
        "{}  {:<72} {} violation(s) in {} {}{}",
        verdict(o),
        o.name,
        o.violations,
        o.checked,
        o.unit,
        offenders(o)
    );
}

/// ` (seat 17, seat 18)`, with `, ...` when the check found more than it names; empty when
/// there is nothing to name.
fn offenders(o: &Outcome) -> String {
    if o.offenders.is_empty() {
        return String::new();
    }
    let more = if o.violations > o.offenders.len() as i64 {
        ", ..."
    } else {
        ""
    };
    format!(" ({}{more})", o.offenders.join(", "))
}

/// Runs one Postgres check; a `settles` check that fails is retried, because the stream sink
/// writes the hold mirror a few ticks after the API answered.
async fn postgres_check(pg: &PgPool, check: &Check) -> anyhow::Result<Outcome> {
    let attempts = if check.settles { SETTLE_ATTEMPTS } else { 1 };
    let mut outcomes = settled(attempts, || async {
        Ok(vec![evaluate(&mut *pg.acquire().await?, check).await?])
    })
    .await?;
    Ok(outcomes.remove(0))
}

/// Runs `pass` until it reports no violation, at most `attempts` times one second apart, and
/// returns the last outcomes.
async fn settled<F, Fut>(attempts: usize, mut pass: F) -> anyhow::Result<Vec<Outcome>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Vec<Outcome>>>,
{
    let mut outcomes = pass().await?;
    for _ in 1..attempts {
        if outcomes.iter().all(|o| o.violations == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        outcomes = pass().await?;
    }
    Ok(outcomes)
}

/// Evaluates one check once, on `conn` (tests run it inside a transaction they roll back).
pub async fn evaluate(conn: &mut PgConnection, check: &Check) -> anyhow::Result<Outcome> {
    let (violations, checked, offenders) = sqlx::query_as::<_, (i64, i64, Vec<String>)>(check.sql)
        .fetch_one(conn)
        .await
        .with_context(|| format!("audit check {:?}", check.name))?;
    Ok(Outcome {
        name: check.name,
        unit: check.unit,
        violations,
        checked,
        offenders,
    })
}

/// The schedules whose inventory Redis has loaded, among those that ever had a hold (a
/// schedule nobody ever held from has nothing in Redis worth comparing).
pub async fn loaded_schedules(
    pg: &PgPool,
    redis: &Pool,
    keys: &Keys,
) -> anyhow::Result<Vec<(ConcertId, ScheduleId)>> {
    let candidates: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT s.concert_id, s.id FROM schedules s
          WHERE EXISTS (SELECT 1 FROM holds h WHERE h.schedule_id = s.id) ORDER BY s.id",
    )
    .fetch_all(pg)
    .await?;
    let mut loaded = Vec::new();
    for chunk in candidates.chunks(1_000) {
        let pipe = redis.next().pipeline();
        for (concert, schedule) in chunk {
            let key = keys.inventory_loaded(ConcertId::new(*concert), ScheduleId::new(*schedule));
            let _: () = pipe.exists(key).await?;
        }
        let exists: Vec<i64> = pipe.all().await?;
        loaded.extend(
            chunk
                .iter()
                .zip(exists)
                .filter(|(_, e)| *e == 1)
                .map(|((c, s), _)| (ConcertId::new(*c), ScheduleId::new(*s))),
        );
    }
    Ok(loaded)
}

/// Compares the Redis inventory of `schedules` (all loaded) with what Postgres implies,
/// retrying while they disagree, for a payment or an expiry may be between its two halves.
pub async fn redis_checks(
    pg: &PgPool,
    redis: &Pool,
    keys: &Keys,
    schedules: &[(ConcertId, ScheduleId)],
) -> anyhow::Result<Vec<Outcome>> {
    settled(SETTLE_ATTEMPTS, || {
        compare_inventory(pg, redis, keys, schedules)
    })
    .await
}

/// A live hold as both stores describe it. Seats sorted; `section` only for general admission.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct LiveHold {
    user: i64,
    schedule: i64,
    section: Option<i64>,
    seats: Vec<i64>,
    quantity: i64,
}

/// One side of the comparison: what a set of schedules holds, sells and counts.
#[derive(Debug, Default, PartialEq, Eq)]
struct Inventory {
    /// Holds that still take places: HELD (even past expiry, until the sweep ends them) or
    /// being paid. Postgres has both as HELD; past their expiry, only those Redis still lists.
    holds: BTreeMap<String, LiveHold>,
    /// (schedule, seat) -> "sold" or the owning hold's id.
    owners: BTreeMap<(i64, i64), String>,
    /// GA section -> places left (a missing Redis counter is missing here).
    ga: BTreeMap<i64, i64>,
    /// (schedule, user) -> tickets held or bought.
    tickets: BTreeMap<(i64, i64), i64>,
}

/// One pass of [`redis_checks`], without retries.
pub async fn compare_inventory(
    pg: &PgPool,
    redis: &Pool,
    keys: &Keys,
    schedules: &[(ConcertId, ScheduleId)],
) -> anyhow::Result<Vec<Outcome>> {
    // Redis first: a hold that ends between the two reads shows as a disagreement and is
    // retried, never as a false agreement.
    let ga_sections: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT sc.concert_id, se.id FROM sections se JOIN schedules sc ON sc.id = se.schedule_id
          WHERE se.schedule_id = ANY($1) AND se.kind = 'GA'",
    )
    .bind(schedules.iter().map(|(_, s)| s.get()).collect::<Vec<_>>())
    .fetch_all(pg)
    .await?;
    let actual = from_redis(redis, keys, schedules, &ga_sections).await?;
    let expected = from_postgres(pg, schedules, &actual.holds).await?;
    Ok(vec![
        diff(
            "Redis live holds = Postgres HELD holds (owner, seats, places)",
            "holds",
            &expected.holds,
            &actual.holds,
            |hold| format!("hold {hold}"),
        ),
        diff(
            "Redis seat owners = sold seats and the seats of HELD holds",
            "seats",
            &expected.owners,
            &actual.owners,
            |(_, seat)| format!("seat {seat}"),
        ),
        {
            // A negative expectation means Postgres's own HELD holds exceed what is left: a
            // violation even where Redis agrees.
            let section = |id: &i64| format!("section {id}");
            let mut ga = diff(
                "Redis GA places left = capacity - sold - held, never below 0",
                "GA sections",
                &expected.ga,
                &actual.ga,
                section,
            );
            let below: Vec<&i64> = expected
                .ga
                .iter()
                .filter(|(_, left)| **left < 0)
                .map(|(id, _)| id)
                .collect();
            ga.violations += below.len() as i64;
            for id in below.into_iter().map(section) {
                if ga.offenders.len() < SAMPLE && !ga.offenders.contains(&id) {
                    ga.offenders.push(id);
                }
            }
            ga
        },
        diff(
            "Redis ticket counts = tickets bought + held, per user and schedule",
            "user schedules",
            &expected.tickets,
            &actual.tickets,
            |(schedule, user)| format!("user {user} schedule {schedule}"),
        ),
    ])
}

/// Counts the keys on which two maps disagree (missing on either side included) and names the
/// first few by `label`.
fn diff<K: Ord, V: PartialEq>(
    name: &'static str,
    unit: &'static str,
    expected: &BTreeMap<K, V>,
    actual: &BTreeMap<K, V>,
    label: impl Fn(&K) -> String,
) -> Outcome {
    let keys: BTreeSet<&K> = expected.keys().chain(actual.keys()).collect();
    let disagree: Vec<&K> = keys
        .iter()
        .copied()
        .filter(|k| expected.get(*k) != actual.get(*k))
        .collect();
    Outcome {
        name,
        unit,
        violations: disagree.len() as i64,
        checked: keys.len() as i64,
        offenders: disagree.into_iter().take(SAMPLE).map(label).collect(),
    }
}

/// A HELD hold in Postgres, with its seats sorted.
#[derive(sqlx::FromRow)]
struct HeldRow {
    id: Uuid,
    user_id: i64,
    schedule_id: i64,
    section_id: Option<i64>,
    quantity: i32,
    seats: Vec<i64>,
    /// Past its `expires_at`, by Postgres's clock.
    expired: bool,
}

/// What Postgres says Redis must hold for `schedules`, given the holds Redis lists now
/// (`listed`, read first): every HELD hold not past its expiry, and those past it that Redis
/// still lists (the sweep has not ended them yet, or they are being paid). A HELD row past its
/// expiry that Redis does not list is over: swept (its `expired` event not mirrored yet), or
/// lost with Redis's data and left out of the schedule's reload, as every path that reads
/// Postgres for live holds leaves it out.
async fn from_postgres(
    pg: &PgPool,
    schedules: &[(ConcertId, ScheduleId)],
    listed: &BTreeMap<String, LiveHold>,
) -> anyhow::Result<Inventory> {
    let ids: Vec<i64> = schedules.iter().map(|(_, s)| s.get()).collect();
    let sold: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT se.schedule_id, ri.seat_id FROM reservation_items ri
           JOIN seats se ON se.id = ri.seat_id WHERE se.schedule_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pg)
    .await?;
    let holds: Vec<HeldRow> = sqlx::query_as(
        "SELECT h.id, h.user_id, h.schedule_id, h.section_id, h.quantity,
                COALESCE(array_agg(hs.seat_id ORDER BY hs.seat_id)
                         FILTER (WHERE hs.seat_id IS NOT NULL), '{}') AS seats,
                h.expires_at <= now() AS expired
           FROM holds h LEFT JOIN hold_seats hs ON hs.hold_id = h.id
          WHERE h.schedule_id = ANY($1) AND h.status = 'HELD' GROUP BY h.id",
    )
    .bind(&ids)
    .fetch_all(pg)
    .await?;
    let ga: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id, (capacity - sold)::bigint FROM sections
          WHERE schedule_id = ANY($1) AND kind = 'GA'",
    )
    .bind(&ids)
    .fetch_all(pg)
    .await?;
    let bought: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT schedule_id, user_id, SUM(quantity)::bigint FROM reservations
          WHERE schedule_id = ANY($1) GROUP BY schedule_id, user_id",
    )
    .bind(&ids)
    .fetch_all(pg)
    .await?;

    let mut inv = Inventory {
        owners: sold
            .into_iter()
            .map(|(schedule, seat)| ((schedule, seat), "sold".to_owned()))
            .collect(),
        ga: ga.into_iter().collect(),
        tickets: bought
            .into_iter()
            .map(|(schedule, user, n)| ((schedule, user), n))
            .collect(),
        ..Inventory::default()
    };
    for HeldRow {
        id,
        user_id: user,
        schedule_id: schedule,
        section_id: section,
        quantity,
        seats,
        expired,
    } in holds
    {
        let id = HoldId::new(id).to_string();
        if expired && !listed.contains_key(&id) {
            continue;
        }
        let quantity = i64::from(quantity);
        for seat in &seats {
            inv.owners.insert((schedule, *seat), id.clone());
        }
        if let Some(left) = section.and_then(|s| inv.ga.get_mut(&s)) {
            *left -= quantity;
        }
        *inv.tickets.entry((schedule, user)).or_default() += quantity;
        inv.holds.insert(
            id,
            LiveHold {
                user,
                schedule,
                section,
                seats,
                quantity,
            },
        );
    }
    Ok(inv)
}

/// What Redis holds for `schedules`: their seat owners, ticket counts and the counters of
/// their `ga_sections` (concert, section), and the live holds of their concerts (the HELD and
/// PAYING sets) that belong to them.
async fn from_redis(
    redis: &Pool,
    keys: &Keys,
    schedules: &[(ConcertId, ScheduleId)],
    ga_sections: &[(i64, i64)],
) -> anyhow::Result<Inventory> {
    let audited: BTreeSet<i64> = schedules.iter().map(|(_, s)| s.get()).collect();
    let concerts: BTreeSet<ConcertId> = schedules.iter().map(|(c, _)| *c).collect();
    let mut inv = Inventory::default();
    for concert in concerts {
        let mut ids: Vec<String> = redis
            .zrange(keys.hold_expiry(concert), 0, -1, None, false, None, false)
            .await?;
        let paying: Vec<String> = redis
            .zrange(keys.hold_paying(concert), 0, -1, None, false, None, false)
            .await?;
        ids.extend(paying);
        for id in ids {
            let Some(hold) = HoldId::parse(&id) else {
                anyhow::bail!("hold set of concert {concert} has a malformed id {id:?}");
            };
            let fields: Vec<Option<String>> = redis
                .hmget(
                    keys.hold(concert, hold),
                    vec!["user", "schedule", "section", "seats", "qty"],
                )
                .await?;
            let number = |i: usize| -> Option<i64> { fields[i].as_deref()?.parse().ok() };
            let (Some(user), Some(schedule), Some(quantity)) = (number(0), number(1), number(4))
            else {
                // Listed without a record: an empty hold, which no Postgres hold equals.
                inv.holds.insert(id, LiveHold::default());
                continue;
            };
            if !audited.contains(&schedule) {
                continue;
            }
            let mut seats: Vec<i64> = fields[3]
                .as_deref()
                .unwrap_or("")
                .split(',')
                .filter_map(|s| s.parse().ok())
                .collect();
            seats.sort_unstable();
            inv.holds.insert(
                id,
                LiveHold {
                    user,
                    schedule,
                    section: number(2),
                    seats,
                    quantity,
                },
            );
        }
    }
    for (concert, section) in ga_sections {
        let left: Option<i64> = redis
            .get(keys.ga_remaining(ConcertId::new(*concert), SectionId::new(*section)))
            .await?;
        if let Some(left) = left {
            inv.ga.insert(*section, left);
        }
    }
    for (concert, schedule) in schedules {
        let owners: BTreeMap<String, String> =
            redis.hgetall(keys.seat_owners(*concert, *schedule)).await?;
        for (seat, owner) in owners {
            inv.owners.insert((schedule.get(), seat.parse()?), owner);
        }
        let tickets: BTreeMap<String, i64> = redis
            .hgetall(keys.user_tickets(*concert, *schedule))
            .await?;
        for (user, n) in tickets {
            inv.tickets.insert((schedule.get(), user.parse()?), n);
        }
    }
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_names_at_most_sample_rows() {
        for check in CHECKS {
            assert_eq!(
                check.sql.matches("LIMIT ").count(),
                1,
                "{:?} samples once",
                check.name
            );
            assert!(
                check.sql.contains(&format!("LIMIT {SAMPLE})")),
                "{:?} names up to {SAMPLE} rows",
                check.name
            );
        }
    }

    #[test]
    fn a_redis_disagreement_names_its_keys_in_order_up_to_the_sample() {
        let expected: BTreeMap<i64, i64> = (1..=8).map(|seat| (seat, 0)).collect();
        let mut actual = expected.clone();
        actual.insert(3, 1);
        actual.remove(&9);
        actual.insert(10, 0);
        let outcome = diff("seats", "seats", &expected, &actual, |s| {
            format!("seat {s}")
        });
        assert_eq!(outcome.violations, 2);
        assert_eq!(outcome.checked, 9);
        assert_eq!(outcome.offenders, ["seat 3", "seat 10"]);

        let none: BTreeMap<i64, i64> = BTreeMap::new();
        let outcome = diff("seats", "seats", &expected, &none, |s| format!("seat {s}"));
        assert_eq!(outcome.violations, 8);
        assert_eq!(outcome.offenders.len(), SAMPLE);
        assert_eq!(
            offenders(&outcome),
            " (seat 1, seat 2, seat 3, seat 4, seat 5, ...)"
        );
    }
}
