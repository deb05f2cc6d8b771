//! Every Lua script, loaded once at start-up.
//!
//! Each script is its own file under `scripts/`, opening with a comment block that gives its
//! KEYS, ARGV, reply shape, complexity and its **Guarantee**. Scripts reply with a small tagged
//! array: `{"ok", ...}` or `{"err", CODE}`; the concept module that calls a script parses that
//! reply into a domain result, so no handler ever matches on strings.
//!
//! Calls go through [`Scripts::run`], which uses `EVALSHA` and, on `NOSCRIPT` (a Redis restart
//! or failover flushed the script cache), loads the script again and retries once.

use fred::{
    prelude::*,
    types::{scripts::Script, FromValue, MultipleKeys, MultipleValues},
};

/// Declares the script set: one field per `.lua` file.
macro_rules! scripts {
    ($($name:ident => $file:literal),* $(,)?) => {
        /// The loaded scripts. Cheap to clone (each holds its source and SHA1).
        #[derive(Clone, Debug)]
        pub struct Scripts {
            $(
                #[doc = concat!("`scripts/", $file, "`")]
                pub $name: Script,
            )*
        }

        impl Scripts {
            /// Parses every script and loads it into Redis.
            pub async fn load(client: &Pool) -> anyhow::Result<Self> {
                let scripts = Self::parsed().clone();
                $(scripts.$name.load(client.next()).await?;)*
                Ok(scripts)
            }

            /// Every script parsed (its SHA1 computed) but not necessarily loaded: for callers
            /// that hold only a pool, such as [`crate::queue::end_session`]. Running one that
            /// Redis does not know yet loads it on the spot (`NOSCRIPT` path of [`Scripts::run`]).
            pub fn parsed() -> &'static Self {
                static PARSED: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
                PARSED.get_or_init(|| Self {
                    $($name: Script::from_lua(include_str!(concat!("scripts/", $file))),)*
                })
            }
        }
    };
}

scripts! {
    queue_join => "queue_join.lua",
    queue_status => "queue_status.lua",
    queue_leave => "queue_leave.lua",
    queue_watch => "queue_watch.lua",
    queue_admit => "queue_admit.lua",
}

impl Scripts {
    /// Runs `script` by SHA, reloading it once if Redis lost its script cache.
    pub async fn run<R>(
        &self,
        client: &Pool,
        script: &Script,
        keys: impl Into<MultipleKeys> + Send,
        args: impl TryInto<MultipleValues, Error = impl Into<fred::error::Error> + Send> + Send,
    ) -> Result<R, fred::error::Error>
    where
        R: FromValue,
    {
        script.evalsha_with_reload(client.next(), keys, args).await
    }
}
