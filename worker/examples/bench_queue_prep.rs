//! Prepares `scripts/bench-queue`: fresh users, two fresh on-sale concerts, and the tokens wrk
//! rotates through.
//!
//! ```text
//! cargo run --release -p boxoffice-worker --example bench_queue_prep -- \
//!     --base http://127.0.0.1:8080 --poll-users 2000 --join-users 150000 --out DIR
//! ```
//!
//! Reads the stack's `BOXOFFICE_*` variables like every binary (`Config::from_env`): the users
//! go into its Postgres and their access tokens are signed with its `BOXOFFICE_JWT_SECRET`, so
//! the gateways under test must share that secret. Writes:
//! - `DIR/poll.tsv`: `accessToken<TAB>queueToken` of users who joined the poll concert
//!   through `--base` before its sale opens (WAITING: nobody is admitted before the opening);
//! - `DIR/join.tsv`: `accessToken` of users who have joined nothing yet;
//! - `DIR/concerts.env`: `POLL_CONCERT=<id>` and `JOIN_CONCERT=<id>`.

use std::{fmt::Write as _, path::PathBuf, time::Instant};

use anyhow::{bail, Context};
use boxoffice_domain::{identity::AccessTokens, ids::UserId, tokens::Signer, Config};
use futures::StreamExt;

struct Args {
    base: String,
    poll_users: i64,
    join_users: i64,
    out: PathBuf,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        base: "http://127.0.0.1:8080".into(),
        poll_users: 2_000,
        join_users: 150_000,
        out: PathBuf::from("."),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--base" => args.base = value,
            "--poll-users" => args.poll_users = value.parse()?,
            "--join-users" => args.join_users = value.parse()?,
            "--out" => args.out = value.into(),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

async fn create_users(pg: &sqlx::PgPool, n: i64) -> anyhow::Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "WITH u AS (INSERT INTO users (name) SELECT 'bench-' || g FROM generate_series(1, $1) g \
         RETURNING id) INSERT INTO point_balances (user_id) SELECT id FROM u RETURNING user_id",
    )
    .bind(n)
    .fetch_all(pg)
    .await?)
}

/// A concert whose sale opens `opens_in` from now (negative: already open).
async fn create_concert(pg: &sqlx::PgPool, title: &str, opens_in: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO concerts (title, venue, sale_opens_at, sale_closes_at) \
         VALUES ($1, 'Bench hall', now() + $2::interval, now() + interval '1 day') RETURNING id",
    )
    .bind(title)
    .bind(opens_in)
    .fetch_one(pg)
    .await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let config = Config::from_env()?;
    let pg = boxoffice_worker::startup::pg_pool(&config).await?;
    let access = AccessTokens::new(
        Signer::new(config.jwt_secret_bytes()),
        config.access_token_ttl,
    );
    let started = Instant::now();
    // The poll concert is in its pre-queue (the rush before a sale opens): the stack's worker
    // admits nobody, so every poll measures the WAITING path, which answers from the
    // replica's cache. On an open sale the admitter would reach the 2,000 prepared places
    // within seconds, and wrk, which replays the same WAITING tokens instead of taking the
    // ACTIVE ones, would measure the one-time status read that crossing the front costs.
    let poll_concert = create_concert(&pg, "bench queue poll", "1 hour").await?;
    let join_concert = create_concert(&pg, "bench queue join", "-1 hour").await?;

    let poll_users = create_users(&pg, args.poll_users).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let url = format!("{}/api/v1/concerts/{poll_concert}/queue", args.base);
    let joined: Vec<anyhow::Result<String>> = futures::stream::iter(poll_users)
        .map(|id| {
            let (http, url, token) = (&http, &url, access.issue(UserId::new(id)));
            async move {
                let response = http.post(url).bearer_auth(&token).send().await?;
                if response.status() != 201 {
                    bail!("join answered {}", response.status());
                }
                let body: serde_json::Value = response.json().await?;
                let queue = body["queueToken"].as_str().context("queueToken")?;
                Ok(format!("{token}\t{queue}\n"))
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let poll_lines = joined.into_iter().collect::<anyhow::Result<String>>()?;

    let join_users = create_users(&pg, args.join_users).await?;
    let mut join_lines = String::with_capacity(join_users.len() * 200);
    for id in join_users {
        let _ = writeln!(join_lines, "{}", access.issue(UserId::new(id)));
    }

    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("poll.tsv"), poll_lines)?;
    std::fs::write(args.out.join("join.tsv"), join_lines)?;
    std::fs::write(
        args.out.join("concerts.env"),
        format!("POLL_CONCERT={poll_concert}\nJOIN_CONCERT={join_concert}\n"),
    )?;
    eprintln!(
        "prepared {} polling and {} joining users for concerts {poll_concert} and {join_concert} in {:?}",
        args.poll_users,
        args.join_users,
        started.elapsed()
    );
    Ok(())
}
