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
    types::{scripts::Script, FromValue, MultipleKeys, MultipleValues, Value},
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
    hold_seats => "hold_seats.lua",
    hold_ga => "hold_ga.lua",
    end_holds => "end_holds.lua",
    claim_hold => "claim_hold.lua",
    unclaim_hold => "unclaim_hold.lua",
    finalise_hold => "finalise_hold.lua",
    load_inventory => "load_inventory.lua",
    ack_events => "ack_events.lua",
    retire_concert => "retire_concert.lua",
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

    /// Like [`Self::run`], but never retried by fred after a lost connection: for a script
    /// that must not run twice when its first reply was lost. A `NOSCRIPT` means nothing ran,
    /// so the one reload and second call stay. `keys` and `args` are fred's own types (shared
    /// bytes), so that the second call's copy copies no string.
    pub async fn run_once<R>(
        &self,
        client: &Pool,
        script: &Script,
        keys: Vec<Key>,
        args: Vec<Value>,
    ) -> Result<R, fred::error::Error>
    where
        R: FromValue,
    {
        let client = client.next();
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
}

/// A script's tagged reply, before the concept module gives it meaning.
#[derive(Debug)]
pub enum Tagged {
    /// `{"ok", ...}`: the data after the tag.
    Ok(Vec<Value>),
    /// `{"err", CODE}`: the stable code.
    Err(String),
}

impl Tagged {
    /// Splits a raw reply into its tag and the rest; anything else is our bug.
    pub fn parse(reply: Vec<Value>) -> anyhow::Result<Self> {
        let mut parts = reply.into_iter();
        let tag = parts.next().and_then(|v| v.as_string());
        match tag.as_deref() {
            Some("ok") => Ok(Tagged::Ok(parts.collect())),
            Some("err") => {
                let code = parts.next().and_then(|v| v.as_string());
                code.map(Tagged::Err)
                    .ok_or_else(|| anyhow::anyhow!("script error reply without a code"))
            }
            other => anyhow::bail!("script reply has no ok/err tag: {other:?}"),
        }
    }
}

/// Reads element `i` of a script reply as a string ("" for a missing element).
pub fn text(values: &[Value], i: usize) -> String {
    values.get(i).and_then(Value::as_string).unwrap_or_default()
}

/// Reads element `i` of a script reply as an integer.
pub fn int(values: &[Value], i: usize) -> anyhow::Result<i64> {
    values
        .get(i)
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
        .ok_or_else(|| anyhow::anyhow!("script reply element {i} is not an integer"))
}
