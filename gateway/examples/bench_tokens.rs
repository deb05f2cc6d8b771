//! Mints tokens for `scripts/bench-sales`: `userId,accessToken,queueToken` for users
//! `FIRST..=LAST`, with an ACTIVE queue token for `CONCERT` admitted now, signed with the
//! configured secret (`BOXOFFICE_JWT_SECRET`, from `.stack/env`).
//!
//! ```sh
//! cargo run --release -p boxoffice-gateway --example bench_tokens -- CONCERT FIRST LAST OUT.csv
//! ```
//!
//! The benchmark needs admission, not the waiting room: minting ACTIVE tokens directly is what
//! the integration tests do too. A token admitted now stays valid after an earlier session of
//! the same user ended, which is how the bench re-admits buyers between phases.

use std::{io::Write, time::Duration};

use anyhow::{bail, Context};
use boxoffice_domain::{
    identity::AccessTokens,
    ids::{ConcertId, UserId},
    queue::QueueTokens,
    tokens::Signer,
    Config,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [concert, first, last, out] = &args[..] else {
        bail!("usage: bench_tokens CONCERT FIRST_USER LAST_USER OUT.csv");
    };
    let concert = ConcertId::new(concert.parse().context("CONCERT")?);
    let (first, last): (i64, i64) = (
        first.parse().context("FIRST")?,
        last.parse().context("LAST")?,
    );
    let config = Config::from_env()?;
    let signer = Signer::new(config.jwt_secret_bytes());
    let access = AccessTokens::new(signer.clone(), Duration::from_secs(6 * 3600));
    let queue = QueueTokens::new(signer);
    let now = boxoffice_domain::now_ms();
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(out).with_context(|| format!("creating {out}"))?,
    );
    for id in first..=last {
        let user = UserId::new(id);
        // An hour of session: longer than any bench run.
        let active = queue.issue_active(user, concert, id, now, now + 3_600_000);
        writeln!(file, "{id},{},{active}", access.issue(user))?;
    }
    file.flush()?;
    Ok(())
}
