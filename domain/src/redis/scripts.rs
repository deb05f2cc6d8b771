//! Every Lua script, loaded once at start-up.
//!
//! Each script is its own file under `scripts/`, opening with a comment block that gives its
//! KEYS, ARGV, reply shape, complexity and its **Guarantee**. Scripts reply with a small tagged
//! array: `{"ok", ...}` or `{"err", CODE}`; the concept module that calls a script parses that
//! reply into a domain result, so no handler ever matches on strings.
//!
//! Calls go through [`super::Hot::run`], which uses `EVALSHA` and, on `NOSCRIPT` (a Redis
//! restart or failover flushed the script cache), loads the script again and retries once.

use fred::{
    prelude::*,
    types::{scripts::Script, Value},
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
                let scripts = Self {
                    $($name: Script::from_lua(include_str!(concat!("scripts/", $file))),)*
                };
                $(scripts.$name.load(client.next()).await?;)*
                Ok(scripts)
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
