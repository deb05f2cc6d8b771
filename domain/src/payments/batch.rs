//! Group commit for payments: a replica's concurrent payments share one Postgres transaction.
//!
//! Why: a payment's transaction writes ten tables, and on a 2-core machine its Postgres cost
//! was most of a payment's CPU (about 1.5 ms of 2.4 ms). A third of that was the commit's WAL
//! flush (turning `synchronous_commit` off, as a measurement only, took 1,565 µs down to 1,207),
//! and most of the rest was per statement: executor start-up, locks, foreign-key trigger set-up,
//! one round trip per step. Sixteen payments recorded by one statement took 0.47 ms each
//! against 0.8 ms apiece one by one. A batch pays all of that once: in `scripts/bench-sales`,
//! Postgres CPU per payment went from 1,565 µs to 744 µs (runs minutes apart, same machine).
//!
//! How: each payment is a `Job` on the replica's queue. A few loops ([`Batcher::run`]) each
//! take whatever is queued (up to [`MAX_BATCH`]) and run the saga of [`super::saga`] for all of
//! it at once: take every hold's advisory lock and open every idempotency key (two pipelined
//! statements, [`pg::open`]), claim the holds in Redis concurrently, record
//! all the claimed ones with one statement ([`pg::record`]), release the keys of those
//! that failed, commit once, then finalise each in Redis. Nothing waits for a batch to fill: a
//! batch is what queued while the previous one was in Postgres, so a lone payment goes at once.
//!
//! The guarantees are the single saga's, payment by payment:
//! - a payment refused for its own reason (not found, expired, already paid, short of points)
//!   gets that answer, its hold is put back, its key released, and the others go on;
//! - anything that fails the batch's transaction as a whole (a constraint that only a Redis
//!   data loss can trip, a deadlock between batches) rolls it back, puts every claimed hold
//!   back, and pays each of its payments alone with the single saga, so the exact error reaches
//!   the exact request;
//! - a crash at any point leaves claimed holds PAYING, and the reconciler settles each from what
//!   Postgres says, as for a single payment.
//!
//! One batch holds at most one payment per user: two payments of one user in one statement
//! would debit the balance once (an `UPDATE ... FROM` updates a row once), and two of one user's
//! keys in one transaction would find each other's half-written rows. The second waits for the
//! next batch.

use std::{collections::HashSet, time::Instant};

use futures::future::join_all;
use tokio::sync::{mpsc, oneshot, watch, Mutex};

use super::{
    payment::Paid,
    pg,
    saga::{finish, observe, put_back, saga, short_of_points},
};
use crate::{
    batching,
    holds::{claim, Claim, HoldRecord, Store},
    ids::{HoldId, UserId},
    points::IdempotencyKey,
    Dependency, Error, Result,
};

/// The most payments one transaction records.
pub const MAX_BATCH: usize = 32;

/// How many batches one replica runs at once: enough to keep Postgres busy while another batch
/// is in Redis, few enough to leave the pool's connections to the other paths.
pub const LOOPS: usize = 4;

/// One payment waiting for its batch.
struct Job {
    user: UserId,
    hold: HoldId,
    key: IdempotencyKey,
    reply: oneshot::Sender<Result<Paid>>,
}

/// A replica's payment queue and the loops that drain it.
pub struct Batcher {
    jobs: mpsc::Sender<Job>,
    queue: Mutex<Queue>,
    /// Set by [`Batcher::close`]. The batcher owns a sender, so the queue never closes on its
    /// own.
    closed: watch::Sender<bool>,
}

struct Queue {
    jobs: mpsc::Receiver<Job>,
    /// Jobs of users who already had one in the batch being gathered: first in the next one.
    deferred: Vec<Job>,
}

impl Default for Batcher {
    fn default() -> Self {
        // Bounded by the requests in flight anyway (each waits for its answer); the bound is
        // there so that a stalled Postgres turns into waiting senders, not memory.
        let (tx, rx) = mpsc::channel(4096);
        Self {
            jobs: tx,
            queue: Mutex::new(Queue {
                jobs: rx,
                deferred: Vec::new(),
            }),
            closed: watch::Sender::new(false),
        }
    }
}

impl Batcher {
    /// Pays `user`'s hold from their points, once per idempotency key (and once per hold,
    /// whatever the keys), in the next batch. Runs to the end even if the caller stops
    /// waiting: the batch is not the request's task.
    pub async fn pay(&self, user: UserId, hold: HoldId, key: IdempotencyKey) -> Result<Paid> {
        let started = Instant::now();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            user,
            hold,
            key,
            reply,
        };
        let result = match self.jobs.send(job).await {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("payment batch dropped").into())),
            Err(_) => Err(Error::unavailable(
                Dependency::Postgres,
                "the payment batcher has stopped",
            )),
        };
        observe(started, &result);
        result
    }

    /// Shuts the queue: payments sent from now on are refused (`Unavailable`), the payments
    /// already queued are still made and answered, and then every [`Batcher::run`] returns.
    /// For the end of a graceful shutdown, once no request is left to send one.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Drains the queue, one batch at a time, until [`Batcher::close`] and the queue is empty.
    /// A replica runs [`LOOPS`] of these.
    pub async fn run(&self, store: Store<'_>) {
        loop {
            // The lock is held while gathering only, so another loop gathers the next batch
            // while this one is in Postgres.
            let closed = self.closed.subscribe();
            let Some(batch) = self.queue.lock().await.gather(closed).await else {
                return;
            };
            // Holds a panicking batch claimed stay PAYING, and the reconciler settles them.
            let size = batch.len();
            batching::run(
                "boxoffice_payment_batch_size",
                size,
                pay_batch(store, batch),
            )
            .await;
        }
    }
}

impl Queue {
    /// Waits for a first job, then takes what else is queued, up to [`MAX_BATCH`] and one per
    /// user. `None` once `closed` and nothing is left queued.
    async fn gather(&mut self, mut closed: watch::Receiver<bool>) -> Option<Vec<Job>> {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut users = HashSet::with_capacity(MAX_BATCH);
        let mut later = Vec::new();
        for job in std::mem::take(&mut self.deferred) {
            if batch.len() < MAX_BATCH && users.insert(job.user) {
                batch.push(job);
            } else {
                later.push(job);
            }
        }
        if batch.is_empty() {
            let job = tokio::select! {
                // A queued job first: closing never drops one.
                biased;
                job = self.jobs.recv() => job,
                () = async { let _ = closed.wait_for(|closed| *closed).await; } => {
                    // Refuses new jobs; `recv` still yields what is queued, then `None`.
                    self.jobs.close();
                    self.jobs.recv().await
                }
            }?;
            users.insert(job.user);
            batch.push(job);
        }
        while batch.len() < MAX_BATCH {
            let Ok(job) = self.jobs.try_recv() else {
                break;
            };
            if users.insert(job.user) {
                batch.push(job);
            } else {
                later.push(job);
            }
        }
        self.deferred = later;
        Some(batch)
    }
}

/// Where one job stands before the record.
enum Step {
    /// Answered from its key, which another request holds: a replay, or a key reused.
    Answered(Result<Paid>),
    /// Refused for its own reason after this transaction claimed its key (the key is released
    /// before the commit, so that a retry with it tries again).
    Refused(Error),
    /// Claimed in Redis, to be recorded.
    Claimed(Claim),
}

/// Pays a batch and answers every job of it.
async fn pay_batch(store: Store<'_>, mut jobs: Vec<Job>) {
    // In hold-id order: every batch takes its advisory locks, and writes its `holds` rows, in
    // the order the sink writes `holds` rows in too, so no two of them wait for each other's
    // rows in a cycle. (A payment batch and the sink writing the same holds in different
    // orders deadlocked under the tickets benchmark before this.)
    jobs.sort_by_key(|j| j.hold);
    let results = match batch_saga(store, &jobs).await {
        Ok(results) => results,
        Err(Fallback) => {
            metrics::counter!("boxoffice_payment_batch_fallbacks_total").increment(1);
            join_all(jobs.iter().map(|j| saga(store, j.user, j.hold, &j.key))).await
        }
    };
    for (job, result) in jobs.into_iter().zip(results) {
        // A caller that stopped waiting is not an error: its payment stands.
        let _ = job.reply.send(result);
    }
}

/// The batch's transaction failed as a whole and was rolled back with every hold put back:
/// pay each job alone.
struct Fallback;

async fn batch_saga(
    store: Store<'_>,
    jobs: &[Job],
) -> std::result::Result<Vec<Result<Paid>>, Fallback> {
    let failed = |e: Error| -> std::result::Result<Vec<Result<Paid>>, Fallback> {
        Ok(jobs.iter().map(|_| Err(e.repeat())).collect())
    };
    let mut client = match store.pg.get().await {
        Ok(client) => client,
        Err(e) => return failed(e.into()),
    };
    let tx = match client.transaction().await {
        Ok(tx) => tx,
        Err(e) => return failed(e.into()),
    };

    // 0. Lock every hold (in the order sorted above) and open every key.
    let payments: Vec<_> = jobs.iter().map(|j| (j.user, j.hold, &j.key)).collect();
    let Ok(opened) = pg::open(&tx, &payments).await else {
        // The transaction is unusable; nothing is claimed yet.
        return Err(Fallback);
    };

    // 1. Claim the holds of the keys opened here, in Redis.
    let steps: Vec<Step> = join_all(jobs.iter().zip(opened).map(|(j, opened)| async move {
        match opened {
            Ok(pg::Opened::New) => match claim::claim(store, j.user, j.hold).await {
                Ok(claim) => Step::Claimed(claim),
                Err(e) => Step::Refused(e),
            },
            Ok(pg::Opened::Replay(payment)) => Step::Answered(Ok(Paid {
                payment,
                concert: j.hold.concert(),
                footprint: None,
            })),
            Err(e) => Step::Answered(Err(e)),
        }
    }))
    .await;
    #[cfg(feature = "fault-injection")]
    if claimed(jobs, &steps)
        .any(|(j, _)| super::fault::hit(j.hold, super::fault::FaultPoint::BeforeCommit))
    {
        // A crash between the claims and the commit: every claimed hold stays PAYING and the
        // reconciler restores them.
        return failed(anyhow::anyhow!("fault injected before commit").into());
    }

    // 2. Lock the GA sections it updates, in order, and record every claimed hold in one
    //    statement.
    let to_record: Vec<pg::Recording<'_>> = claimed(jobs, &steps)
        .map(|(j, claim)| pg::Recording {
            user: j.user,
            hold: j.hold,
            key: &j.key,
            claim,
        })
        .collect();
    #[cfg(feature = "fault-injection")]
    if to_record
        .iter()
        .any(|r| super::fault::hit(r.hold, super::fault::FaultPoint::BatchRefused))
    {
        put_back(store, to_record.iter().map(|r| r.hold)).await;
        return Err(Fallback);
    }
    let recorded = async {
        pg::lock_sections(&tx, &to_record).await?;
        pg::record(&tx, &to_record).await
    };
    let recorded = match recorded.await {
        Ok(recorded) => recorded,
        Err(e) => {
            tracing::info!(error = %e.report(), payments = to_record.len(), "payment batch refused; paying each alone");
            put_back(store, to_record.iter().map(|r| r.hold)).await;
            return Err(Fallback);
        }
    };
    let short: Vec<&pg::Recording<'_>> = to_record
        .iter()
        .filter(|r| !recorded.contains_key(&r.hold))
        .collect();
    let balances = match pg::balances(&tx, short.iter().map(|r| r.user)).await {
        Ok(balances) => balances,
        Err(_) => {
            put_back(store, to_record.iter().map(|r| r.hold)).await;
            return Err(Fallback);
        }
    };
    put_back(store, short.iter().map(|r| r.hold)).await;
    // Each job's answer; the hold record of each payment recorded (for step 4); the keys
    // of refused payments.
    let mut results: Vec<Result<Paid>> = Vec::with_capacity(jobs.len());
    let mut paid: Vec<Option<HoldRecord>> = Vec::with_capacity(jobs.len());
    let mut refused: Vec<(UserId, &IdempotencyKey)> = Vec::new();
    for (job, step) in jobs.iter().zip(steps) {
        let (result, record) = match step {
            Step::Answered(result) => (result, None),
            Step::Refused(e) => {
                refused.push((job.user, &job.key));
                (Err(e), None)
            }
            Step::Claimed(claim) => match recorded.get(&job.hold) {
                Some(payment) => (
                    Ok(Paid {
                        payment: payment.clone(),
                        concert: job.hold.concert(),
                        footprint: Some(claim.record.footprint()),
                    }),
                    Some(claim.record),
                ),
                None => {
                    refused.push((job.user, &job.key));
                    (
                        Err(short_of_points(&balances, job.user, claim.amount)),
                        None,
                    )
                }
            },
        };
        results.push(result);
        paid.push(record);
    }

    // 3. Release the keys of refused payments, commit.
    if pg::release_keys(&tx, &refused).await.is_err() {
        put_back(store, recorded.keys().copied()).await;
        return Err(Fallback);
    }
    if let Err(e) = tx.commit().await {
        // It may or may not have committed: the claimed holds stay PAYING for the reconciler,
        // which asks Postgres, as for a single payment.
        let e: Error = e.into();
        return Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(paid) if paid.footprint.is_some() => Err(e.repeat()),
                other => other,
            })
            .collect());
    }
    #[cfg(feature = "fault-injection")]
    if recorded
        .keys()
        .any(|h| super::fault::hit(*h, super::fault::FaultPoint::AfterCommit))
    {
        return failed(anyhow::anyhow!("fault injected after commit").into());
    }

    // 4. Finalise in Redis and end each buyer's session; the payments stand whatever Redis
    //    does now (the reconciler finishes what fails here).
    join_all(jobs.iter().zip(&paid).filter_map(|(job, record)| {
        record
            .as_ref()
            .map(|record| finish(store, job.user, job.hold, record))
    }))
    .await;
    Ok(results)
}

/// The claimed jobs, with their claims.
fn claimed<'a>(jobs: &'a [Job], steps: &'a [Step]) -> impl Iterator<Item = (&'a Job, &'a Claim)> {
    jobs.iter().zip(steps).filter_map(|(j, s)| match s {
        Step::Claimed(claim) => Some((j, claim)),
        _ => None,
    })
}
