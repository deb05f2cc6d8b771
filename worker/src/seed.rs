//! `boxoffice-worker seed`: the demo data of the brief's §4.

use boxoffice_domain::Config;

/// Seeds the database.
pub async fn run(_config: &Config, _args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("seeding is not written yet")
}
