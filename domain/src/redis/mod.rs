//! Redis plumbing shared by every concept: the keyspace ([`keys`]), the Lua scripts
//! ([`scripts`]) and the connection pool.

pub mod keys;
pub mod scripts;

pub use keys::Keys;
pub use scripts::Scripts;

use fred::prelude::*;

/// How long one Redis command may take before it fails. Without a bound, commands issued
/// while Redis is down wait for the reconnection forever: requests hang instead of answering
/// 503, and worker loops never reach the point where they notice a shutdown. Two seconds is
/// orders of magnitude above any command we send (the largest, a schedule's inventory load,
/// takes tens of milliseconds).
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Connects a pool of `size` Redis connections and waits until it is usable.
pub async fn connect(url: &str, size: usize) -> anyhow::Result<Pool> {
    let config = fred::prelude::Config::from_url(url)?;
    let pool = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = std::time::Duration::from_secs(2);
        })
        .with_performance_config(|p| {
            p.default_command_timeout = COMMAND_TIMEOUT;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .build_pool(size)?;
    pool.init().await?;
    Ok(pool)
}
