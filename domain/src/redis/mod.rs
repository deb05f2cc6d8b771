//! Redis plumbing shared by every concept: the keyspace ([`keys`]), the Lua scripts
//! ([`scripts`]), the registries of concerts in use ([`registry`]) and [`Hot`], the one handle
//! every Redis-touching function takes.

pub mod keys;
pub mod registry;
pub mod scripts;

use std::sync::Arc;

pub use keys::Keys;
pub use scripts::Scripts;

use fred::{
    prelude::*,
    types::{scripts::Script, FromValue, MultipleKeys, MultipleValues},
};

/// How long one Redis command may take before it fails. Without a bound, commands issued
/// while Redis is down wait for the reconnection forever: requests hang instead of answering
/// 503, and worker loops never reach the point where they notice a shutdown. Two seconds is
/// orders of magnitude above any command we send (the largest, a schedule's inventory load,
/// takes tens of milliseconds).
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The hot state's handle: the connection pool, the loaded scripts and the keyspace under the
/// configured namespace. Every function that touches Redis takes `&Hot`; a process builds one
/// at start-up and clones it (three reference counts) wherever it is kept.
#[derive(Clone)]
pub struct Hot {
    /// The connections. fred routes each command to one of them.
    pub pool: Pool,
    /// Every script, loaded.
    pub scripts: Arc<Scripts>,
    /// Every key name.
    pub keys: Keys,
}

impl std::fmt::Debug for Hot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hot")
            .field("namespace", &self.keys.namespace())
            .finish_non_exhaustive()
    }
}

impl Hot {
    /// Connects a pool of `size` connections, waits until it is usable and loads every script.
    pub async fn connect(url: &str, size: usize, namespace: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        let pool = connect(url, size).await.context("connecting to Redis")?;
        let scripts = Scripts::load(&pool).await.context("loading Lua scripts")?;
        Ok(Self {
            pool,
            scripts: Arc::new(scripts),
            keys: Keys::new(namespace),
        })
    }

    /// Runs `script` by SHA, reloading it once if Redis lost its script cache (`NOSCRIPT`: a
    /// restart or failover flushed it).
    pub async fn run<R>(
        &self,
        script: &Script,
        keys: impl Into<MultipleKeys> + Send,
        args: impl TryInto<MultipleValues, Error = impl Into<fred::error::Error> + Send> + Send,
    ) -> Result<R, fred::error::Error>
    where
        R: FromValue,
    {
        script
            .evalsha_with_reload(self.pool.next(), keys, args)
            .await
    }

    /// Like [`Self::run`], but never retried by fred after a lost connection: for a script
    /// that must not run twice when its first reply was lost. A `NOSCRIPT` means nothing ran,
    /// so the one reload and second call stay. `keys` and `args` are fred's own types (shared
    /// bytes), so that the second call's copy copies no string.
    pub async fn run_once<R>(
        &self,
        script: &Script,
        keys: Vec<Key>,
        args: Vec<Value>,
    ) -> Result<R, fred::error::Error>
    where
        R: FromValue,
    {
        let client = self.pool.next();
        let once = client.with_options(&Options {
            max_attempts: Some(1),
            ..Options::default()
        });
        let call = || once.evalsha::<R, _, _, _>(script.sha1().clone(), keys.clone(), args.clone());
        match call().await {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                script.load(client).await?;
                call().await
            }
            other => other,
        }
    }

    /// Closes every connection (graceful shutdown).
    pub async fn close(&self) {
        if let Err(e) = self.pool.quit().await {
            tracing::warn!(error = %e, "closing Redis connections");
        }
    }
}

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
