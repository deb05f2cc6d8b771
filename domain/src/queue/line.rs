//! The line's rules and numbers: the policy a concert's room runs by, its sale window, the
//! admission state every poll is answered from, and the maths of position, ETA and poll
//! intervals. Pure: no I/O here.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The ended log is kept this long, and no session may last longer: an entry older than the
/// longest session can only concern tokens that have expired anyway. Two hours is far above
/// any sensible checkout session and matches the replicas' ended-session cache TTL.
pub const ENDED_RETENTION: Duration = Duration::from_secs(2 * 3600);

/// Poll intervals never go below this: the front of the line learns it was admitted within
/// one second plus the state cache age, and polling faster would only add load.
pub const MIN_POLL_MS: i64 = 1_000;
/// Poll intervals never go above this: far back in a 100k line, two polls a minute keep the
/// position fresh enough and cost 100k / 30 s ≈ 3.3k polls/s in total.
pub const MAX_POLL_MS: i64 = 30_000;
/// The ETA is capped at a day: beyond that (a line that does not move at all) a number would
/// be noise.
pub const MAX_ETA_MS: i64 = 24 * 3600 * 1000;
/// The slowest rate the ETA divides by, in places per second, so a line stalled at capacity
/// shows a long but finite wait.
const MIN_RATE: f64 = 0.01;

/// A concert's waiting-room policy, stored in Postgres (`queue_policies`) and changeable at
/// runtime through the admin endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueuePolicy {
    /// Users admitted per second.
    pub admit_per_second: u32,
    /// The most users ACTIVE at once.
    pub max_active: u32,
    /// How long an ACTIVE session lasts.
    pub session_seconds: u32,
    /// A waiting user who has not polled for this long is skipped as abandoned.
    pub grace_seconds: u32,
    /// Shuffle the users who joined before the sale opened, once, at opening.
    #[serde(default)]
    pub shuffle_at_open: bool,
}

impl QueuePolicy {
    /// The policy of a concert with no row in `queue_policies`.
    ///
    /// - 100 users/s: an ACTIVE user makes one or two requests a second, so even 2,000 of
    ///   them cost a small share of the ~20k req/s one 2-core box serves (brief §5), and a
    ///   10,000-seat sale moves at a pace buyers accept.
    /// - 2,000 ACTIVE: 100/s for the first 20 s fills it; after that admission follows
    ///   departures (payments, leaves, expiries), which is what protects the sale endpoints.
    /// - 600 s session: the contract's default of 10 minutes.
    /// - 120 s grace: longer than the 30 s longest poll interval with room for a lost poll or
    ///   a throttled background tab, short enough that ghosts do not stall the line for long.
    /// - no shuffle: plain FIFO unless an operator asks for a fair start.
    pub const DEFAULT: Self = Self {
        admit_per_second: 100,
        max_active: 2_000,
        session_seconds: 600,
        grace_seconds: 120,
        shuffle_at_open: false,
    };

    /// Checks the bounds an operator may set.
    pub fn validate(self) -> Result<Self> {
        let check = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(Error::InvalidInput(what.to_owned()))
            }
        };
        check(
            (1..=100_000).contains(&self.admit_per_second),
            "admitPerSecond must be from 1 to 100000",
        )?;
        check(
            (1..=10_000_000).contains(&self.max_active),
            "maxActive must be from 1 to 10000000",
        )?;
        check(
            self.session_seconds >= 1
                && u64::from(self.session_seconds) <= ENDED_RETENTION.as_secs(),
            "sessionSeconds must be from 1 to 7200",
        )?;
        check(
            (1..=86_400).contains(&self.grace_seconds),
            "graceSeconds must be from 1 to 86400",
        )?;
        Ok(self)
    }

    /// The session length in ms.
    pub fn session_ms(&self) -> i64 {
        i64::from(self.session_seconds) * 1000
    }

    /// The grace period in ms.
    pub fn grace_ms(&self) -> i64 {
        i64::from(self.grace_seconds) * 1000
    }
}

/// When a concert's sale runs, as far as the waiting room cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleWindow {
    /// Epoch ms the sale opens: admission starts then; joining works before (pre-queue).
    pub opens_ms: i64,
    /// Epoch ms the sale closes: no joins and no admission after.
    pub closes_ms: i64,
    /// Every ticket is sold: no joins.
    pub sold_out: bool,
}

impl SaleWindow {
    /// Refuses joins to a concert that is closed or sold out (409 CONCERT_NOT_ON_SALE). An
    /// upcoming concert takes joins: that is the pre-queue.
    pub fn check_joinable(&self, now_ms: i64) -> Result<()> {
        if self.sold_out || now_ms >= self.closes_ms {
            Err(Error::ConcertNotOnSale)
        } else {
            Ok(())
        }
    }
}

/// A concert's admission state as the admitter last published it: what polls are answered
/// from. Built from the `queue_state` hash; a concert the admitter has not ticked yet reads
/// as an empty line under the default policy.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionView {
    /// Every place at or below it has been admitted, has left or was skipped.
    pub front: i64,
    /// The line's generation (bumped by the shuffle at opening).
    pub gen: u32,
    /// How fast the front moves, in places per second, once observed for a second or more.
    pub observed_rate: Option<f64>,
    /// The policy's admission rate, users per second.
    pub policy_rate: f64,
    /// The policy's grace period.
    pub grace_ms: i64,
    /// The policy's session length.
    pub session_ms: i64,
    /// The sale's opening, once the admitter has published it.
    pub opens_ms: Option<i64>,
    /// Users waiting at the last tick.
    pub waiting: i64,
    /// Users ACTIVE at the last tick.
    pub active: i64,
    /// Users admitted so far.
    pub admitted_total: i64,
    /// Users skipped as abandoned so far.
    pub abandoned_total: i64,
    /// Redis-clock ms of the last tick.
    pub last_tick_ms: Option<i64>,
}

impl Default for AdmissionView {
    fn default() -> Self {
        let policy = QueuePolicy::DEFAULT;
        Self {
            front: 0,
            gen: 0,
            observed_rate: None,
            policy_rate: f64::from(policy.admit_per_second),
            grace_ms: policy.grace_ms(),
            session_ms: policy.session_ms(),
            opens_ms: None,
            waiting: 0,
            active: 0,
            admitted_total: 0,
            abandoned_total: 0,
            last_tick_ms: None,
        }
    }
}

impl AdmissionView {
    /// Parses the `queue_state` hash (field, value pairs). Unknown or malformed fields keep
    /// their defaults: a half-written state is read as "not ticked yet", never as an error.
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut view = Self::default();
        for (field, value) in fields {
            let int = || value.parse::<i64>().ok();
            match field {
                "front" => view.front = int().unwrap_or(view.front),
                "gen" => view.gen = value.parse().unwrap_or(view.gen),
                "rate" => {
                    view.observed_rate = value.parse::<f64>().ok().filter(|r| *r >= 0.0);
                }
                "policy_rate" => view.policy_rate = value.parse().unwrap_or(view.policy_rate),
                "grace_ms" => view.grace_ms = int().unwrap_or(view.grace_ms),
                "session_ms" => view.session_ms = int().unwrap_or(view.session_ms),
                "opens_ms" => view.opens_ms = int(),
                "waiting" => view.waiting = int().unwrap_or(0),
                "active" => view.active = int().unwrap_or(0),
                "admitted_total" => view.admitted_total = int().unwrap_or(0),
                "abandoned_total" => view.abandoned_total = int().unwrap_or(0),
                "last_ms" => view.last_tick_ms = int(),
                _ => {}
            }
        }
        view
    }

    /// The rate the ETA uses: the observed one once there is one, else the policy's.
    pub fn eta_rate(&self) -> f64 {
        self.observed_rate.unwrap_or(self.policy_rate)
    }

    /// The honest wait of someone `position` places behind the front at `now_ms`.
    pub fn eta_ms(&self, position: i64, now_ms: i64) -> i64 {
        match self.opens_ms {
            // Before the opening nothing moves: wait for it, then go at the policy rate.
            Some(opens) if now_ms < opens => {
                eta_ms(position, self.policy_rate).saturating_add(opens - now_ms)
            }
            _ => eta_ms(position, self.eta_rate()),
        }
        .min(MAX_ETA_MS)
    }
}

/// The wait, in ms, of someone `position` places behind the front of a line whose front
/// moves `rate` places per second.
pub fn eta_ms(position: i64, rate: f64) -> i64 {
    if position <= 0 {
        return 0;
    }
    let rate = if rate.is_finite() {
        rate.max(MIN_RATE)
    } else {
        MIN_RATE
    };
    let ms = position as f64 * 1000.0 / rate;
    if ms >= MAX_ETA_MS as f64 {
        MAX_ETA_MS
    } else {
        ms.ceil() as i64
    }
}

/// When a waiting client should poll next: a quarter of its ETA (so it checks in a few times
/// before its turn), within [`MIN_POLL_MS`]..[`MAX_POLL_MS`], spread by `jitter` (a factor
/// in 0.9..=1.1, so a crowd that joined together does not poll in lockstep), and never more
/// than a third of the grace period: a client that follows `pollAfterMs` sends at least three
/// heartbeats per grace period, so one lost poll does not cost its place. The grace bound
/// wins over the minimum.
pub fn poll_after_ms(eta_ms: i64, grace_ms: i64, jitter: f64) -> i64 {
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.9, 1.1)
    } else {
        1.0
    };
    let base = (eta_ms / 4).clamp(MIN_POLL_MS, MAX_POLL_MS);
    let spread = (base as f64 * jitter).round() as i64;
    spread.min(MAX_POLL_MS).min((grace_ms / 3).max(1))
}

/// When an ACTIVE client should check back: it needs no polling to stay ACTIVE, so at most
/// every [`MAX_POLL_MS`], and not after its session ends.
pub fn active_poll_after_ms(until_ms: i64, now_ms: i64) -> i64 {
    (until_ms - now_ms).clamp(MIN_POLL_MS, MAX_POLL_MS)
}

/// Where a token holder stands, as a join or poll answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// In line.
    Waiting {
        /// The token to use from now on.
        token: String,
        /// Places between the front and this one (1 = next).
        position: i64,
        /// The expected wait, in ms.
        eta_ms: i64,
        /// When to poll next, in ms.
        poll_after_ms: i64,
    },
    /// Admitted.
    Active {
        /// The ACTIVE token, proof of admission for the ACTIVE endpoints.
        token: String,
        /// Epoch ms the session ends.
        until_ms: i64,
        /// When to check back, in ms.
        poll_after_ms: i64,
    },
}

/// What a join did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// A new place (201) rather than the one the user already had (200).
    pub created: bool,
    /// Where the user stands now.
    pub standing: Standing,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn view(rate: Option<f64>) -> AdmissionView {
        AdmissionView {
            observed_rate: rate,
            policy_rate: 50.0,
            ..AdmissionView::default()
        }
    }

    #[test]
    fn eta_divides_the_position_by_the_observed_rate() {
        assert_eq!(view(Some(10.0)).eta_ms(100, 0), 10_000);
    }

    #[test]
    fn eta_falls_back_to_the_policy_rate_before_any_admission() {
        assert_eq!(view(None).eta_ms(100, 0), 2_000);
    }

    #[test]
    fn eta_before_the_opening_adds_the_wait_for_it() {
        let v = AdmissionView {
            opens_ms: Some(60_000),
            ..view(Some(1000.0))
        };
        assert_eq!(
            v.eta_ms(100, 0),
            60_000 + 2_000,
            "policy rate, not observed"
        );
    }

    #[test]
    fn a_stalled_line_shows_a_long_but_capped_wait() {
        assert_eq!(view(Some(0.0)).eta_ms(1_000_000, 0), MAX_ETA_MS);
        assert_eq!(eta_ms(1, 0.0), 100_000);
    }

    #[test]
    fn the_front_of_the_line_polls_every_second_and_the_back_every_thirty() {
        assert_eq!(poll_after_ms(0, 120_000, 1.0), MIN_POLL_MS);
        assert_eq!(poll_after_ms(3_600_000, 120_000, 1.0), MAX_POLL_MS);
        assert_eq!(poll_after_ms(40_000, 120_000, 1.0), 10_000);
    }

    #[test]
    fn a_short_grace_period_caps_the_poll_interval_below_the_minimum() {
        assert_eq!(poll_after_ms(3_600_000, 1_000, 1.0), 333);
    }

    #[test]
    fn the_state_hash_parses_and_missing_fields_keep_defaults() {
        let v = AdmissionView::from_fields([
            ("front", "41"),
            ("gen", "1"),
            ("rate", "-1.000000"),
            ("policy_rate", "20"),
            ("grace_ms", "1000"),
            ("opens_ms", "123"),
            ("junk", "x"),
        ]);
        assert_eq!(v.front, 41);
        assert_eq!(v.gen, 1);
        assert_eq!(v.observed_rate, None, "-1 means not observed yet");
        assert_eq!(v.policy_rate, 20.0);
        assert_eq!(v.grace_ms, 1000);
        assert_eq!(v.opens_ms, Some(123));
        assert_eq!(v.session_ms, QueuePolicy::DEFAULT.session_ms());
    }

    #[test]
    fn policies_outside_the_bounds_are_refused() {
        let ok = QueuePolicy::DEFAULT;
        assert!(ok.validate().is_ok());
        for bad in [
            QueuePolicy {
                admit_per_second: 0,
                ..ok
            },
            QueuePolicy {
                max_active: 0,
                ..ok
            },
            QueuePolicy {
                session_seconds: 7201,
                ..ok
            },
            QueuePolicy {
                grace_seconds: 0,
                ..ok
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn closed_and_sold_out_concerts_take_no_joins_but_upcoming_ones_do() {
        let w = SaleWindow {
            opens_ms: 100,
            closes_ms: 200,
            sold_out: false,
        };
        assert!(w.check_joinable(50).is_ok(), "pre-queue");
        assert!(w.check_joinable(150).is_ok());
        assert!(w.check_joinable(200).is_err());
        let sold_out = SaleWindow {
            sold_out: true,
            ..w
        };
        assert!(sold_out.check_joinable(150).is_err());
    }

    proptest! {
        #[test]
        fn eta_never_shrinks_further_back_in_line(a in 0i64..10_000_000, b in 0i64..10_000_000, rate in 0.0f64..100_000.0) {
            let (near, far) = (a.min(b), a.max(b));
            prop_assert!(eta_ms(near, rate) <= eta_ms(far, rate));
            prop_assert!(eta_ms(far, rate) <= MAX_ETA_MS);
        }

        #[test]
        fn poll_interval_grows_with_the_distance_and_stays_in_bounds(
            a in 0i64..100_000_000, b in 0i64..100_000_000, grace in 1i64..1_000_000,
        ) {
            let (near, far) = (a.min(b), a.max(b));
            prop_assert!(poll_after_ms(near, grace, 1.0) <= poll_after_ms(far, grace, 1.0));
            for jitter in [0.0, 0.9, 1.0, 1.1, 5.0, f64::NAN] {
                let p = poll_after_ms(far, grace, jitter);
                prop_assert!((1..=MAX_POLL_MS).contains(&p));
                prop_assert!(p <= (grace / 3).max(1), "at least three polls per grace period");
                if grace / 3 >= MIN_POLL_MS {
                    prop_assert!(p >= (MIN_POLL_MS as f64 * 0.9) as i64);
                }
            }
        }
    }
}
