//! The waiting room's Redis side: runs the queue scripts and parses their tagged replies into
//! the types below, so nothing above this module matches on strings.

use anyhow::anyhow;
use fred::prelude::*;

use super::{
    line::{AdmissionView, ENDED_RETENTION},
    pg::AdmissionPlan,
};
use crate::{
    ids::{ConcertId, UserId},
    redis::Hot,
    Error, Result,
};

/// A user's standing as `queue_join.lua` or `queue_status.lua` read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceReply {
    /// No place: left, skipped as abandoned, or the session is over (status only).
    None,
    /// Waiting at `place`; `created` when this join handed the place out.
    Waiting {
        created: bool,
        place: i64,
        since_ms: i64,
        gen: u32,
        front: i64,
    },
    /// ACTIVE since `admitted_ms` until `until_ms`.
    Active {
        place: i64,
        admitted_ms: i64,
        until_ms: i64,
    },
}

/// What `queue_leave.lua` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    /// The user had a place or session.
    pub had_place: bool,
    /// The user was ACTIVE: capacity was freed.
    pub was_active: bool,
    /// Redis-clock ms of the end, as logged.
    pub ended_at_ms: i64,
}

/// Where a replica's read of the ended log starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFrom {
    /// First look: the last session length's worth.
    Init,
    /// From this score (inclusive): the highest one seen so far.
    Score(i64),
}

/// What `queue_watch.lua` returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Watched {
    /// The admission state.
    pub view: AdmissionView,
    /// Ended entries: (user, Redis-clock ms), ascending by time.
    pub ended: Vec<(UserId, i64)>,
    /// Redis's clock at the read.
    pub now_ms: i64,
}

/// How the worker runs a tick, beyond the concert's plan.
#[derive(Debug, Clone)]
pub struct TickParams {
    /// This worker's id, the lease value.
    pub worker_id: String,
    /// Lease length.
    pub lease_ms: i64,
    /// The token bucket holds at most this many ms of the rate.
    pub burst_ms: i64,
    /// Bound on the entries one tick expires, sweeps or walks past.
    pub max_scan: u32,
    /// Seed of the shuffle at opening, should this tick be the one.
    pub seed: u32,
}

/// What one admission tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// Another worker holds the concert's lease.
    Busy { owner: String },
    /// This worker ran the tick.
    Ran(TickReport),
}

/// The counts of a tick this worker ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TickReport {
    pub admitted: i64,
    pub abandoned: i64,
    pub expired: i64,
    pub waiting: i64,
    pub active: i64,
    pub front: i64,
    /// Users the shuffle at opening permuted (0 on every other tick).
    pub shuffled: i64,
    pub admitted_total: i64,
}

fn malformed(script: &str, reply: &[Value]) -> Error {
    Error::Internal(anyhow!("{script} replied {reply:?}"))
}

fn int(script: &str, reply: &[Value], i: usize) -> Result<i64> {
    reply
        .get(i)
        .and_then(Value::as_i64)
        .ok_or_else(|| malformed(script, reply))
}

fn tag(reply: &[Value]) -> Option<std::borrow::Cow<'_, str>> {
    reply.first().and_then(Value::as_str)
}

fn place_reply(script: &str, reply: Vec<Value>) -> Result<PlaceReply> {
    let r = &reply;
    match tag(r).as_deref() {
        Some("none") => Ok(PlaceReply::None),
        Some(t @ ("new" | "waiting")) => Ok(PlaceReply::Waiting {
            created: t == "new",
            place: int(script, r, 1)?,
            since_ms: int(script, r, 2)?,
            gen: u32::try_from(int(script, r, 3)?).map_err(|_| malformed(script, r))?,
            front: int(script, r, 4)?,
        }),
        Some("active") => Ok(PlaceReply::Active {
            place: int(script, r, 1)?,
            admitted_ms: int(script, r, 2)?,
            until_ms: int(script, r, 3)?,
        }),
        _ => Err(malformed(script, r)),
    }
}

/// Runs `queue_join.lua` for `user` in `concert` (whose sale opens at `opens_ms`).
pub async fn join(
    hot: &Hot,
    concert: ConcertId,
    user: UserId,
    opens_ms: i64,
) -> Result<PlaceReply> {
    let reply: Vec<Value> = hot
        .run(
            &hot.scripts.queue_join,
            vec![
                hot.keys.queue_seq(concert),
                hot.keys.queue_places(concert),
                hot.keys.queue_line(concert),
                hot.keys.queue_heartbeats(concert),
                hot.keys.queue_active(concert),
                hot.keys.queue_admitted(concert),
                hot.keys.queue_ended(concert),
                hot.keys.queue_state(concert),
            ],
            vec![user.get().to_string(), opens_ms.to_string()],
        )
        .await?;
    place_reply("queue_join", reply)
}

/// Runs `queue_status.lua`: where `user` stands in `concert` right now.
pub async fn status(hot: &Hot, concert: ConcertId, user: UserId) -> Result<PlaceReply> {
    let reply: Vec<Value> = hot
        .run(
            &hot.scripts.queue_status,
            vec![
                hot.keys.queue_places(concert),
                hot.keys.queue_line(concert),
                hot.keys.queue_active(concert),
                hot.keys.queue_admitted(concert),
                hot.keys.queue_ended(concert),
                hot.keys.queue_state(concert),
            ],
            vec![user.get().to_string()],
        )
        .await?;
    place_reply("queue_status", reply)
}

/// Runs `queue_leave.lua`: `user` gives up their place or session in `concert`.
pub async fn leave(hot: &Hot, concert: ConcertId, user: UserId) -> Result<Left> {
    let reply: Vec<Value> = hot
        .run(
            &hot.scripts.queue_leave,
            vec![
                hot.keys.queue_places(concert),
                hot.keys.queue_line(concert),
                hot.keys.queue_heartbeats(concert),
                hot.keys.queue_active(concert),
                hot.keys.queue_admitted(concert),
                hot.keys.queue_ended(concert),
            ],
            vec![user.get().to_string()],
        )
        .await?;
    let r = &reply;
    match tag(r).as_deref() {
        Some("ok") => Ok(Left {
            had_place: int("queue_leave", r, 1)? == 1,
            was_active: int("queue_leave", r, 2)? == 1,
            ended_at_ms: int("queue_leave", r, 3)?,
        }),
        _ => Err(malformed("queue_leave", r)),
    }
}

/// Runs `queue_watch.lua`: `concert`'s admission state and up to `limit` ended entries from
/// `from`. `default_session_ms` sizes the first look when the admitter has not ticked yet.
pub async fn watch(
    hot: &Hot,
    concert: ConcertId,
    from: WatchFrom,
    limit: usize,
    default_session_ms: i64,
) -> Result<Watched> {
    let from = match from {
        WatchFrom::Init => "init".to_owned(),
        WatchFrom::Score(score) => score.to_string(),
    };
    let reply: Vec<Value> = hot
        .run(
            &hot.scripts.queue_watch,
            vec![hot.keys.queue_state(concert), hot.keys.queue_ended(concert)],
            vec![from, limit.to_string(), default_session_ms.to_string()],
        )
        .await?;
    let r = &reply;
    let (Some(state), Some(ended)) = (r.first(), r.get(1)) else {
        return Err(malformed("queue_watch", r));
    };
    let state: Vec<String> = state
        .clone()
        .into_array()
        .into_iter()
        .filter_map(Value::into_string)
        .collect();
    let view = AdmissionView::from_fields(
        state
            .chunks_exact(2)
            .map(|pair| (pair[0].as_str(), pair[1].as_str())),
    );
    let ended_flat = ended.clone().into_array();
    let ended = ended_flat
        .chunks_exact(2)
        .filter_map(|pair| {
            let user = pair[0].as_i64()?;
            let at = pair[1].as_f64()?;
            Some((UserId::new(user), at as i64))
        })
        .collect();
    Ok(Watched {
        view,
        ended,
        now_ms: int("queue_watch", r, 2)?,
    })
}

/// Runs one admission tick of `queue_admit.lua` for `plan`'s concert.
pub async fn admit(hot: &Hot, plan: &AdmissionPlan, params: &TickParams) -> Result<Tick> {
    let c = plan.concert;
    let policy = plan.policy;
    let reply: Vec<Value> = hot
        .run(
            &hot.scripts.queue_admit,
            vec![
                hot.keys.queue_lease(c),
                hot.keys.queue_state(c),
                hot.keys.queue_line(c),
                hot.keys.queue_places(c),
                hot.keys.queue_heartbeats(c),
                hot.keys.queue_active(c),
                hot.keys.queue_admitted(c),
                hot.keys.queue_ended(c),
                hot.keys.queue_seq(c),
            ],
            vec![
                params.worker_id.clone(),
                params.lease_ms.to_string(),
                policy.admit_per_second.to_string(),
                policy.max_active.to_string(),
                policy.session_ms().to_string(),
                policy.grace_ms().to_string(),
                params.max_scan.to_string(),
                plan.window.opens_ms.to_string(),
                plan.window.closes_ms.to_string(),
                if policy.shuffle_at_open { "1" } else { "0" }.to_owned(),
                params.seed.to_string(),
                params.burst_ms.to_string(),
                (ENDED_RETENTION.as_millis() as i64).to_string(),
            ],
        )
        .await?;
    let r = &reply;
    let s = "queue_admit";
    match tag(r).as_deref() {
        Some("busy") => Ok(Tick::Busy {
            owner: r
                .get(1)
                .and_then(Value::as_str)
                .map(|o| o.into_owned())
                .unwrap_or_default(),
        }),
        Some("ok") => Ok(Tick::Ran(TickReport {
            admitted: int(s, r, 1)?,
            abandoned: int(s, r, 2)?,
            expired: int(s, r, 3)?,
            waiting: int(s, r, 4)?,
            active: int(s, r, 5)?,
            front: int(s, r, 6)?,
            shuffled: int(s, r, 7)?,
            admitted_total: int(s, r, 8)?,
        })),
        _ => Err(malformed(s, r)),
    }
}
