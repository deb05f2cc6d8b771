//! Redis plumbing shared by every concept: the keyspace ([`keys`]), the Lua scripts
//! ([`scripts`]) and the connection pool.

pub mod keys;
pub mod scripts;

pub use keys::Keys;
pub use scripts::Scripts;

use fred::prelude::*;

/// Connects a pool of `size` Redis connections and waits until it is usable.
pub async fn connect(url: &str, size: usize) -> anyhow::Result<Pool> {
    let config = fred::prelude::Config::from_url(url)?;
    let pool = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = std::time::Duration::from_secs(2);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .build_pool(size)?;
    pool.init().await?;
    Ok(pool)
}
