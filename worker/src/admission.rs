//! The admission loop: every `BOXOFFICE_TICK_MS`, for each concert with a waiting room in use
//! (the registry the gateways add to), run one admission tick (`queue_admit.lua`). A room
//! that stays empty leaves the registry until someone joins again.
//!
//! Invariant 2 (FIFO admission) and the rate and capacity promises live in the script: it
//! admits in place order, at most the policy rate (a token bucket kept in Redis) and never
//! beyond `maxActive`. This loop's part is the lease (the script refuses a tick while another
//! worker holds the concert's lease, so two workers never double the rate, and a dead
//! worker's lease lapses after `BOXOFFICE_QUEUE_LEASE_MS`), the policies (re-read from
//! Postgres every `BOXOFFICE_QUEUE_POLICY_REFRESH_MS`, so an admin change applies within
//! seconds) and the metrics.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use boxoffice_domain::{
    ids::ConcertId,
    now_ms,
    queue::{
        pg::{self as queue_pg, AdmissionPlan},
        redis::{self as queue_redis, Tick, TickParams, TickReport},
        room::REGISTRATION_REFRESH,
    },
    redis::{keys::Registry, registry},
    telemetry::{ConcertLabel, ConcertLabels},
};
use futures::StreamExt;
use metrics::{Counter, Gauge};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::startup::Deps;

/// Bound on the entries one tick expires, sweeps or walks past per concert: keeps one script
/// run under a millisecond or so (a thousand O(log N) steps) so Redis never stalls on it.
const MAX_SCAN: u32 = 1_000;
/// Concerts ticked concurrently: enough to hide round trips, few enough not to flood Redis.
const CONCURRENCY: usize = 16;
/// How often the admitted-per-second gauge is recomputed.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// How often an empty room (nobody waiting, nobody active) is ticked, instead of every tick
/// (capped at half the lease, so the lease is still renewed in time). A sale touches many
/// rooms that then sit empty until they close: ticking thousands of them ten times a second
/// kept Redis busy with no one in line. The cost is that the first user to join an empty
/// room waits up to this long for admission; the bucket refills by elapsed time, so the
/// rate is not lost.
const IDLE_EVERY: Duration = Duration::from_secs(1);

/// An empty room whose registration is older than this leaves the work list (a gateway
/// registers it again on the next join). Twice the gateways' refresh, so a room anyone joined
/// lately is never retired. A sale spread over thousands of concerts left every one of them
/// ticked once a second for the rest of its sale window without this.
const RETIRE_AFTER: Duration = Duration::from_secs(2 * REGISTRATION_REFRESH.as_secs());

/// Spawns the admission loop; it returns when `cancel` fires, between ticks.
pub fn spawn(deps: Deps, cancel: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(run(deps, cancel))
}

/// Runs admission ticks until `cancel` fires. A crashed worker simply stops renewing its
/// leases; a graceful one does the same (the lease lapses within `queue_lease`), which keeps
/// one path for both.
pub async fn run(deps: Deps, cancel: CancellationToken) {
    let mut admitter = Admitter::new(deps);
    let mut every = tokio::time::interval(admitter.deps.config.tick);
    // The bucket refills by elapsed Redis time, so a late tick loses nothing: no catch-up.
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = every.tick() => {}
        }
        if let Err(e) = admitter.tick().await {
            tracing::warn!(error = %format_args!("{e:#}"), "admission tick failed");
            metrics::counter!("boxoffice_queue_ticks_total", "outcome" => "error").increment(1);
        }
    }
    tracing::info!("admission loop stopped");
}

/// One worker's admission state: the plans it ticks by, and per-concert metrics.
struct Admitter {
    deps: Deps,
    params: TickParams,
    plans: HashMap<ConcertId, AdmissionPlan>,
    plans_loaded: Option<Instant>,
    metrics: HashMap<ConcertId, ConcertGauges>,
    /// Label slots for the rooms' metrics; a room keeps its slot while it is ticked here.
    labels: ConcertLabels,
    /// Empty rooms, and when each is next due a tick.
    idle_until: HashMap<ConcertId, Instant>,
    idle_every: Duration,
}

impl Admitter {
    fn new(deps: Deps) -> Self {
        let params = TickParams {
            worker_id: deps.config.worker_id.clone(),
            lease_ms: deps.config.queue_lease.as_millis() as i64,
            // One second's worth (or two ticks, if ticks are longer): a tick that runs late on
            // a busy host, or the pause of a lease failover, is made up for at the next tick
            // instead of lost, and no window ever sees more than one second's worth above
            // rate x elapsed (in steady state the bucket is emptied every tick, so a window
            // is exact to within one tick's worth).
            burst_ms: (2 * deps.config.tick.as_millis() as i64).max(1_000),
            max_scan: MAX_SCAN,
            seed: 1,
        };
        Self {
            params,
            plans: HashMap::new(),
            plans_loaded: None,
            metrics: HashMap::new(),
            labels: ConcertLabels::default(),
            idle_until: HashMap::new(),
            idle_every: IDLE_EVERY.min(deps.config.queue_lease / 2),
            deps,
        }
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        let Deps { hot, pg, .. } = &self.deps;
        let concerts = registry::list(hot, Registry::Rooms).await?;
        let stale = self
            .plans_loaded
            .is_none_or(|at| at.elapsed() >= self.deps.config.queue_policy_refresh);
        let missing: Vec<ConcertId> = concerts
            .iter()
            .filter(|c| !self.plans.contains_key(c))
            .copied()
            .collect();
        if stale || !missing.is_empty() {
            let wanted = if stale { &concerts } else { &missing };
            match queue_pg::admission_plans(pg, wanted).await {
                Ok(plans) => {
                    if stale {
                        self.plans.clear();
                        self.plans_loaded = Some(Instant::now());
                    }
                    self.plans
                        .extend(plans.into_iter().map(|plan| (plan.concert, plan)));
                }
                // Postgres down: keep ticking by the plans we have.
                Err(e) => tracing::warn!(error = %e.report(), "reading queue policies failed"),
            }
        }
        // A fresh seed per tick; only the opening tick of a shuffling concert uses it.
        self.params.seed = rand::random::<u32>() >> 1;
        let now = Instant::now();
        let registered: HashSet<ConcertId> = concerts.iter().copied().collect();
        self.idle_until.retain(|c, _| registered.contains(c));
        let plans: Vec<AdmissionPlan> = concerts
            .iter()
            .filter(|c| self.idle_until.get(c).is_none_or(|due| now >= *due))
            .filter_map(|c| self.plans.get(c).copied())
            .collect();
        let (deps, params) = (&self.deps, &self.params);
        let results: Vec<_> = futures::stream::iter(plans)
            .map(|plan| async move {
                let started = Instant::now();
                let tick = queue_redis::admit(&deps.hot, &plan, params).await;
                metrics::histogram!("boxoffice_queue_tick_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                (plan, tick)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (plan, tick) in results {
            match tick {
                Ok(Tick::Ran(report)) => {
                    metrics::counter!("boxoffice_queue_ticks_total", "outcome" => "ran")
                        .increment(1);
                    self.record(plan.concert, &report);
                    if report.shuffled > 0 {
                        tracing::info!(concert = %plan.concert, users = report.shuffled, "pre-queue shuffled at opening");
                    }
                    if report.waiting != 0 || report.active != 0 {
                        self.idle_until.remove(&plan.concert);
                        continue;
                    }
                    self.idle_until.insert(plan.concert, now + self.idle_every);
                    let hot = &self.deps.hot;
                    let gone = if now_ms() >= plan.window.closes_ms {
                        // The sale is over and the room is empty: stop ticking it.
                        registry::remove(hot, Registry::Rooms, plan.concert).await?;
                        true
                    } else {
                        // Empty and nobody joined lately: off the list until a join
                        // registers it again.
                        let cutoff = now_ms() - RETIRE_AFTER.as_millis() as i64;
                        registry::retire(hot, Registry::Rooms, plan.concert, cutoff).await?
                    };
                    if gone {
                        tracing::debug!(concert = %plan.concert, "empty room off the work list");
                        self.plans.remove(&plan.concert);
                        self.metrics.remove(&plan.concert);
                        self.idle_until.remove(&plan.concert);
                    }
                }
                Ok(Tick::Busy { .. }) => {
                    metrics::counter!("boxoffice_queue_ticks_total", "outcome" => "busy")
                        .increment(1);
                }
                Err(e) => {
                    metrics::counter!("boxoffice_queue_ticks_total", "outcome" => "error")
                        .increment(1);
                    tracing::warn!(concert = %plan.concert, error = %e.report(), "admission tick failed");
                }
            }
        }
        Ok(())
    }

    fn record(&mut self, concert: ConcertId, report: &TickReport) {
        let gauges = self.metrics.entry(concert).or_insert_with(|| {
            ConcertGauges::new(self.labels.label(concert), report.admitted_total)
        });
        gauges.waiting.set(report.waiting as f64);
        gauges.active.set(report.active as f64);
        gauges.front.set(report.front as f64);
        gauges.admitted.increment(report.admitted.unsigned_abs());
        gauges.abandoned.increment(report.abandoned.unsigned_abs());
        gauges.expired.increment(report.expired.unsigned_abs());
        let elapsed = gauges.window_start.elapsed();
        if elapsed >= RATE_WINDOW {
            let admitted = report.admitted_total - gauges.window_total;
            gauges
                .per_second
                .set(admitted as f64 / elapsed.as_secs_f64());
            gauges.window_start = Instant::now();
            gauges.window_total = report.admitted_total;
        }
    }
}

/// The metrics of one concert's room, registered once: `boxoffice_queue_waiting`,
/// `boxoffice_queue_active`, `boxoffice_queue_front`, `boxoffice_queue_admitted_per_second`
/// (gauges) and `boxoffice_queue_{admitted,abandoned,expired}_total` (counters), each with a
/// `concert` label. Only the lease owner reports a concert, so summing over workers is right.
struct ConcertGauges {
    waiting: Gauge,
    active: Gauge,
    front: Gauge,
    per_second: Gauge,
    admitted: Counter,
    abandoned: Counter,
    expired: Counter,
    window_start: Instant,
    window_total: i64,
    /// Holds the label slot while the room is tracked.
    _label: ConcertLabel,
}

impl ConcertGauges {
    /// A concert past the label cap counts under `concert="other"` and has no gauges (one
    /// gauge shared by many rooms would show whichever wrote last).
    fn new(label: ConcertLabel, admitted_total: i64) -> Self {
        let id = label.value().to_owned();
        let gauge = |name: &'static str| {
            if label.is_own() {
                metrics::gauge!(name, "concert" => id.clone())
            } else {
                Gauge::noop()
            }
        };
        Self {
            waiting: gauge("boxoffice_queue_waiting"),
            active: gauge("boxoffice_queue_active"),
            front: gauge("boxoffice_queue_front"),
            per_second: gauge("boxoffice_queue_admitted_per_second"),
            admitted: metrics::counter!("boxoffice_queue_admitted_total", "concert" => id.clone()),
            abandoned: metrics::counter!("boxoffice_queue_abandoned_total", "concert" => id.clone()),
            expired: metrics::counter!("boxoffice_queue_expired_total", "concert" => id),
            window_start: Instant::now(),
            window_total: admitted_total,
            _label: label,
        }
    }
}
