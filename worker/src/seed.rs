//! `boxoffice-worker seed [--force] [--tokens-csv PATH]`: the demo data of the brief's §4.
//!
//! Everything is written with `COPY ... FROM STDIN` in one transaction, so a seed either lands
//! whole or not at all (a half-seeded database would otherwise look seeded to the next run).
//! Ids are explicit and deterministic, so load tests and k6 scripts can name them:
//!
//! | what | ids | notes |
//! |---|---|---|
//! | users | 1..=10,000 | `user-00001`...; balance 1,000,000 and one matching `CHARGE` ledger row |
//! | arena concert | concert 1, schedule 1 | always on sale |
//! | arena sections | 1..=100 seated (`S001`..`S100`, 500 seats each), 101 `GA` (capacity 5,000) | price by tier |
//! | arena seats | 1..=50,000 | section `s` holds seats `(s-1)*500+1 ..= s*500` |
//! | small concerts | concerts 2..=10,001, schedule id = concert id | one seated section each |
//! | small sections | concert id + 100 (102..=10,101), name `Floor`, 50 seats | |
//! | small seats | 50,001..=550,000 | concert `c` holds `50,000+(c-2)*50+1 ..= 50,000+(c-1)*50` |
//!
//! Sale windows follow the concert id (times are relative to the moment of seeding, so a seed
//! is always "live"): `id % 25 == 0` closed yesterday; otherwise `id % 10 == 0` opens in 7 days
//! (UPCOMING); everything else opened an hour ago and closes in 30 days (ON_SALE). Concert 1
//! matches neither rule, so the arena is always on sale. Its waiting-room policy is seeded too.
//!
//! Seeding is a no-op when any user exists; `--force` truncates every table first.
//! `--tokens-csv PATH` writes `userId,accessToken` (with that header line) for every seeded
//! user, signed with the configured secret and TTL, whether or not seeding was skipped.

use std::{
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context;
use boxoffice_domain::{identity::AccessTokens, ids::UserId, tokens::Signer, Config};
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use sqlx::{PgConnection, Postgres, Transaction};

use crate::{progress::Step, startup};

/// Seeded users, ids 1..=USERS (brief §4).
pub const USERS: i64 = 10_000;
/// Every seeded user's starting balance: enough for the ticket limit at the top arena tier.
pub const STARTING_BALANCE: i64 = 1_000_000;
/// The arena concert, the target of the contention tests.
pub const ARENA_CONCERT: i64 = 1;
/// Seated sections of the arena (brief §4: 50,000 seats in sections of ~500).
const ARENA_SECTIONS: i64 = 100;
/// Seats per arena section.
const ARENA_SEATS_PER_SECTION: i64 = 500;
/// Section id of the arena's general-admission section (right after the seated ones).
pub const ARENA_GA_SECTION: i64 = ARENA_SECTIONS + 1;
/// Capacity of the arena's general-admission section (brief §4).
const GA_CAPACITY: i64 = 5_000;
/// Price of a general-admission ticket.
const GA_PRICE: i64 = 50_000;
/// The small concerts, ids 2..=SMALL_CONCERTS+1 (brief §4: 10,000 concerts of 50 seats).
const SMALL_CONCERTS: i64 = 10_000;
/// Seats of a small concert's one section.
const SMALL_SEATS: i64 = 50;
/// Seats per row when naming seats (`A01`..`A25`, `B01`...); 500 seats make rows A..T.
const SEATS_PER_ROW: i64 = 25;
/// Key of the advisory lock that serialises concurrent seeders (two `stack start`s at once).
const SEED_LOCK: i64 = 0x5eed;
/// Bytes buffered before one COPY chunk goes out: big enough to amortise round trips, small
/// enough that memory stays flat while 550,000 seat rows stream through.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// The options of `boxoffice-worker seed`, parsed by the binary's command line.
#[derive(Debug, Default, Clone, PartialEq, Eq, clap::Args)]
pub struct Options {
    /// Truncate every table of the schema first, then seed (Redis's hot state is left alone).
    #[arg(long)]
    pub force: bool,
    /// Write `userId,accessToken` for every seeded user to PATH, signed with the configured
    /// secret and TTL, whether or not seeding was skipped.
    #[arg(long, value_name = "PATH")]
    pub tokens_csv: Option<PathBuf>,
}

/// Seeds the database (or skips when seeded), then writes the token file if asked to.
pub async fn run(config: &Config, options: &Options) -> anyhow::Result<()> {
    let step = Step::start("seed", "connecting to Postgres");
    let pg = startup::pg_pool(config).await?;
    step.done("connected");
    let started = Instant::now();
    // Waiting here means another seeder holds the lock: say so before blocking on it.
    let step = Step::start("seed", "taking the seed lock");
    let mut tx = pg.begin().await.context("starting the seed transaction")?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SEED_LOCK)
        .execute(&mut *tx)
        .await?;
    let seeded: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users)")
        .fetch_one(&mut *tx)
        .await?;
    step.done(if seeded {
        "taken, users exist"
    } else {
        "taken, no users yet"
    });
    if seeded && !options.force {
        tx.rollback().await?;
        println!("seed: users already exist, skipped (use --force to truncate and reseed)");
    } else {
        if options.force {
            truncate_all(&mut tx).await?;
        }
        let counts = write_all(&mut tx, Utc::now().trunc_subsecs(0)).await?;
        let step = Step::start("seed", "commit");
        tx.commit().await.context("committing the seed")?;
        step.done("done");
        // Fresh statistics, so the first queries after a seed get sane plans.
        let step = Step::start("seed", "analyze");
        sqlx::query(
            "ANALYZE users, point_balances, point_ledger, concerts, schedules, sections, seats",
        )
        .execute(&pg)
        .await?;
        step.done("done");
        println!(
            "seed: {} in {:.1}s",
            counts.join(", "),
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(path) = &options.tokens_csv {
        write_tokens(config, &pg, path).await?;
    }
    pg.close().await;
    Ok(())
}

/// Empties every application table of the current schema, whatever later migrations add.
async fn truncate_all(tx: &mut Transaction<'static, Postgres>) -> anyhow::Result<()> {
    let tables: Option<String> = sqlx::query_scalar(
        "SELECT string_agg(format('%I', tablename), ', ') FROM pg_tables \
         WHERE schemaname = current_schema() AND tablename <> '_sqlx_migrations'",
    )
    .fetch_one(&mut **tx)
    .await?;
    if let Some(tables) = tables {
        let step = Step::start("seed", "truncate (--force)");
        sqlx::query(&format!("TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            .execute(&mut **tx)
            .await
            .context("truncating for --force")?;
        step.done("done");
        println!("seed: --force, truncated {tables}");
    }
    Ok(())
}

/// Writes every table of the seed and returns `table=rows` lines for the summary.
async fn write_all(
    tx: &mut Transaction<'static, Postgres>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<String>> {
    let conn: &mut PgConnection = tx;
    let mut counts = Vec::new();
    let mut count = |table: &str, rows: u64| counts.push(format!("{table}={rows}"));

    count("users", copy(conn, "users (id, name)", user_rows()).await?);
    count(
        "point_balances",
        copy(conn, "point_balances (user_id, balance)", balance_rows()).await?,
    );
    count(
        "point_ledger",
        copy(conn, "point_ledger (user_id, delta, reason)", ledger_rows()).await?,
    );
    count(
        "concerts",
        copy(
            conn,
            "concerts (id, title, venue, sale_opens_at, sale_closes_at)",
            concert_rows(now),
        )
        .await?,
    );
    count(
        "schedules",
        copy(
            conn,
            "schedules (id, concert_id, starts_at, sale_opens_at, sale_closes_at)",
            schedule_rows(now),
        )
        .await?,
    );
    count(
        "sections",
        copy(
            conn,
            "sections (id, schedule_id, name, kind, price, capacity)",
            section_rows(),
        )
        .await?,
    );
    count(
        "seats",
        copy(
            conn,
            "seats (id, section_id, schedule_id, seat_no, price)",
            seat_rows(),
        )
        .await?,
    );
    // The arena's waiting room: 500 admissions a second up to 5,000 active shoppers, each with
    // a 10-minute session (the contract's default) and 30 s of grace for a missed poll.
    sqlx::query(
        "INSERT INTO queue_policies \
         (concert_id, admit_per_second, max_active, session_seconds, grace_seconds, shuffle_at_open) \
         VALUES ($1, 500, 5000, 600, 30, false)",
    )
    .bind(ARENA_CONCERT)
    .execute(&mut *conn)
    .await?;
    count("queue_policies", 1);
    // COPY with explicit ids does not advance the identity sequences; without this the first
    // sign-up after a seed would collide with user 1.
    for table in ["users", "concerts", "schedules", "sections", "seats"] {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
        ))
        .execute(&mut *conn)
        .await?;
    }
    Ok(counts)
}

/// Streams `rows` (COPY text lines, each ending in `\n`) into `target` in ~1 MiB chunks and
/// returns the rows written, as one progress step named after the table.
async fn copy(
    conn: &mut PgConnection,
    target: &str,
    rows: impl Iterator<Item = String>,
) -> anyhow::Result<u64> {
    let table = target.split_once(' ').map_or(target, |(table, _)| table);
    let step = Step::start("seed", table);
    let mut copy = conn
        .copy_in_raw(&format!("COPY {target} FROM STDIN"))
        .await
        .with_context(|| format!("starting COPY {target}"))?;
    let mut chunk = String::with_capacity(COPY_CHUNK_BYTES + 256);
    for row in rows {
        chunk.push_str(&row);
        if chunk.len() >= COPY_CHUNK_BYTES {
            copy.send(chunk.as_bytes()).await?;
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        copy.send(chunk.as_bytes()).await?;
    }
    let rows = copy
        .finish()
        .await
        .with_context(|| format!("finishing COPY {target}"))?;
    step.done(format_args!("{rows} rows"));
    Ok(rows)
}

/// A timestamp as COPY's text format reads it.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

fn user_rows() -> impl Iterator<Item = String> {
    (1..=USERS).map(|id| format!("{id}\tuser-{id:05}\n"))
}

fn balance_rows() -> impl Iterator<Item = String> {
    (1..=USERS).map(|id| format!("{id}\t{STARTING_BALANCE}\n"))
}

/// One CHARGE per user equal to the starting balance: balance == sum(ledger) from the start.
fn ledger_rows() -> impl Iterator<Item = String> {
    (1..=USERS).map(|id| format!("{id}\t{STARTING_BALANCE}\tCHARGE\n"))
}

/// Every concert id: the arena, then the small ones.
fn concert_ids() -> impl Iterator<Item = i64> {
    ARENA_CONCERT..=SMALL_CONCERTS + 1
}

/// The sale window of a concert, by the rule in the module docs.
fn sale_window(concert: i64, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    if concert % 25 == 0 {
        (now - days(30), now - days(1))
    } else if concert % 10 == 0 {
        (now + days(7), now + days(37))
    } else {
        (now - chrono::Duration::hours(1), now + days(30))
    }
}

/// When a concert's one date starts: after its sale closes, spread over two months.
fn starts_at(concert: i64, now: DateTime<Utc>) -> DateTime<Utc> {
    let (_, closes) = sale_window(concert, now);
    closes + days(1 + concert % 60)
}

fn concert_rows(now: DateTime<Utc>) -> impl Iterator<Item = String> {
    const VENUES: [&str; 5] = [
        "Olympic Hall",
        "Riverside Theatre",
        "Blue Square",
        "Harbour Stage",
        "Old Town Club",
    ];
    concert_ids().map(move |id| {
        let (opens, closes) = sale_window(id, now);
        let (title, venue) = if id == ARENA_CONCERT {
            ("Arena Night".to_owned(), "Boxoffice Arena")
        } else {
            (format!("Concert {id:05}"), VENUES[(id % 5) as usize])
        };
        format!("{id}\t{title}\t{venue}\t{}\t{}\n", ts(opens), ts(closes))
    })
}

/// One schedule per concert, with the concert's id and sale window.
fn schedule_rows(now: DateTime<Utc>) -> impl Iterator<Item = String> {
    concert_ids().map(move |id| {
        let (opens, closes) = sale_window(id, now);
        format!(
            "{id}\t{id}\t{}\t{}\t{}\n",
            ts(starts_at(id, now)),
            ts(opens),
            ts(closes)
        )
    })
}

/// Arena tiers: the front sections cost more. The top tier times the ticket limit (4) fits in
/// the starting balance, so any seeded user can buy anywhere.
fn arena_section_price(section: i64) -> i64 {
    match section {
        1..=10 => 200_000,
        11..=40 => 150_000,
        41..=70 => 110_000,
        _ => 80_000,
    }
}

/// A small concert's one section: id = concert id + 100, after the arena's 101 sections.
fn small_section_id(concert: i64) -> i64 {
    concert + ARENA_GA_SECTION - 1
}

fn small_section_price(concert: i64) -> i64 {
    30_000 + (concert % 5) * 10_000
}

fn section_rows() -> impl Iterator<Item = String> {
    let arena = (1..=ARENA_SECTIONS).map(|s| {
        format!(
            "{s}\t{ARENA_CONCERT}\tS{s:03}\tSEATED\t{}\t{ARENA_SEATS_PER_SECTION}\n",
            arena_section_price(s)
        )
    });
    let ga = std::iter::once(format!(
        "{ARENA_GA_SECTION}\t{ARENA_CONCERT}\tGA\tGA\t{GA_PRICE}\t{GA_CAPACITY}\n"
    ));
    let small = (ARENA_CONCERT + 1..=SMALL_CONCERTS + 1).map(|c| {
        format!(
            "{}\t{c}\tFloor\tSEATED\t{}\t{SMALL_SEATS}\n",
            small_section_id(c),
            small_section_price(c)
        )
    });
    arena.chain(ga).chain(small)
}

/// Seat label for the `index`-th seat (0-based) of a section: `A01`..`A25`, `B01`...
fn seat_no(index: i64) -> String {
    let row = index / SEATS_PER_ROW;
    let mut label = String::with_capacity(4);
    // Rows past Z (more than 650 seats) would get two letters; no seeded section is that big.
    if row >= 26 {
        label.push(char::from(b'A' + (row / 26 - 1) as u8));
    }
    label.push(char::from(b'A' + (row % 26) as u8));
    let _ = write!(label, "{:02}", index % SEATS_PER_ROW + 1);
    label
}

/// First seat id of a small concert (seat ids continue right after the arena's 50,000).
fn small_first_seat_id(concert: i64) -> i64 {
    ARENA_SECTIONS * ARENA_SEATS_PER_SECTION + (concert - 2) * SMALL_SEATS + 1
}

fn seat_rows() -> impl Iterator<Item = String> {
    let arena = (1..=ARENA_SECTIONS).flat_map(|s| {
        let price = arena_section_price(s);
        (0..ARENA_SEATS_PER_SECTION).map(move |i| {
            let id = (s - 1) * ARENA_SEATS_PER_SECTION + i + 1;
            format!("{id}\t{s}\t{ARENA_CONCERT}\t{}\t{price}\n", seat_no(i))
        })
    });
    let small = (ARENA_CONCERT + 1..=SMALL_CONCERTS + 1).flat_map(|c| {
        let (section, price, first) = (
            small_section_id(c),
            small_section_price(c),
            small_first_seat_id(c),
        );
        (0..SMALL_SEATS)
            .map(move |i| format!("{}\t{section}\t{c}\t{}\t{price}\n", first + i, seat_no(i)))
    });
    arena.chain(small)
}

/// Writes `userId,accessToken` for every seeded user that exists.
async fn write_tokens(config: &Config, pg: &sqlx::PgPool, path: &Path) -> anyhow::Result<()> {
    let step = Step::start("seed", format!("access tokens to {}", path.display()));
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id <= $1 ORDER BY id")
        .bind(USERS)
        .fetch_all(pg)
        .await?;
    let tokens = AccessTokens::new(
        Signer::new(config.jwt_secret_bytes()),
        config.access_token_ttl,
    );
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "userId,accessToken")?;
    for id in &ids {
        writeln!(out, "{id},{}", tokens.issue(UserId::new(*id)))?;
    }
    out.flush()?;
    step.done(format_args!("{} tokens", ids.len()));
    println!(
        "seed: wrote {} access tokens (valid {}) to {}",
        ids.len(),
        humanize(config.access_token_ttl),
        path.display()
    );
    Ok(())
}

fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn fields(row: &str) -> Vec<&str> {
        row.trim_end_matches('\n').split('\t').collect()
    }

    #[test]
    fn the_seed_has_the_sizes_of_the_brief() {
        assert_eq!(user_rows().count(), 10_000);
        assert_eq!(concert_rows(Utc::now()).count(), 10_001);
        assert_eq!(schedule_rows(Utc::now()).count(), 10_001);
        assert_eq!(section_rows().count(), 100 + 1 + 10_000);
        assert_eq!(seat_rows().count(), 50_000 + 500_000);
    }

    #[test]
    fn seat_ids_are_unique_and_contiguous_and_labels_unique_per_section() {
        let mut ids = HashSet::new();
        let mut labels = HashSet::new();
        for row in seat_rows() {
            let f = fields(&row);
            assert!(ids.insert(f[0].parse::<i64>().unwrap()));
            assert!(labels.insert((f[1].to_owned(), f[3].to_owned())));
        }
        assert_eq!(ids.iter().min(), Some(&1));
        assert_eq!(ids.iter().max(), Some(&550_000));
    }

    #[test]
    fn every_seat_belongs_to_a_section_of_its_own_schedule_at_the_section_price() {
        let sections: std::collections::HashMap<String, (String, String)> = section_rows()
            .map(|row| {
                let f = fields(&row);
                (f[0].to_owned(), (f[1].to_owned(), f[4].to_owned()))
            })
            .collect();
        for row in seat_rows() {
            let f = fields(&row);
            let (schedule, price) = &sections[f[1]];
            assert_eq!((schedule.as_str(), price.as_str()), (f[2], f[4]));
        }
    }

    #[test]
    fn sale_windows_follow_the_documented_rule() {
        let now = Utc::now();
        assert!(sale_window(1, now).0 < now && now < sale_window(1, now).1);
        assert!(sale_window(10, now).0 > now);
        assert!(sale_window(25, now).1 < now);
        assert!(sale_window(50, now).1 < now, "closed wins over upcoming");
        for id in concert_ids() {
            let (opens, closes) = sale_window(id, now);
            assert!(closes > opens);
            assert!(starts_at(id, now) > closes);
        }
    }

    #[test]
    fn any_seeded_user_can_afford_the_ticket_limit_in_the_top_tier() {
        assert!(4 * arena_section_price(1) <= STARTING_BALANCE);
    }

    #[test]
    fn seat_labels_run_by_row() {
        assert_eq!(seat_no(0), "A01");
        assert_eq!(seat_no(24), "A25");
        assert_eq!(seat_no(25), "B01");
        assert_eq!(seat_no(499), "T25");
    }
}
