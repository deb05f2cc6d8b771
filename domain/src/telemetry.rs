//! Logging and the Prometheus recorder, shared by both binaries.
//!
//! Metric names follow `boxoffice_<area>_<what>_<unit>`; counters end in `_total`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use std::{io::IsTerminal, time::Duration};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogFormat;

/// Latency buckets in seconds: fine below 25 ms, where our p99 target lives, coarse above.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,
];

/// Installs the global tracing subscriber (`RUST_LOG` filter, default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    // `try_init` so that tests, which build several apps in one process, do not panic.
    let _ = match format {
        LogFormat::Json => registry
            .with(fmt::layer().json().flatten_event(true))
            .try_init(),
        // Colours only on a terminal (the layer writes to stdout): the stack and compose send
        // logs to files, where escape codes are noise; formatting them also took about 1 % of
        // a gateway's samples on the hold path.
        LogFormat::Text => registry
            .with(fmt::layer().with_ansi(std::io::stdout().is_terminal()))
            .try_init(),
    };
}

/// Installs the global Prometheus recorder once per process and returns its handle. With
/// `idle`, counters and histograms not updated for that long are dropped from the output (for
/// series labelled by concert); code that keeps metric handles must then not rely on them
/// for longer than `idle`, so the worker, which keeps per-concert gauges, passes `None`.
pub fn init_metrics(idle: Option<Duration>) -> anyhow::Result<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    // Serialises first calls: tests build several apps on parallel threads, and two of them
    // racing past the check below would both try to install the global recorder.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .idle_timeout(MetricKindMask::COUNTER | MetricKindMask::HISTOGRAM, idle)
        .install_recorder()?;
    let handle = HANDLE.get_or_init(|| handle).clone();
    // The exporter keeps histograms as buckets; this task trims their upkeep data.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// How many concerts carry their own `concert` label at once in one limiter (one gateway's
/// watched rooms, one worker's admitted rooms); the rest share `concert="other"`. An on-sale
/// has a handful of concerts in play; seed 004's journey over random concerts put 4,000 of them
/// in play and made each gateway's scrape 150k lines, which cost Prometheus a third of a core.
pub const MAX_CONCERT_LABELS: usize = 50;

/// The label every concert past [`MAX_CONCERT_LABELS`] shares.
pub const OTHER_CONCERTS: &str = "other";

/// Hands out per-concert label slots, at most [`MAX_CONCERT_LABELS`] at a time. Cheap to clone;
/// clones share the slots.
#[derive(Debug, Clone, Default)]
pub struct ConcertLabels(std::sync::Arc<std::sync::atomic::AtomicUsize>);

/// The `concert` label of one concert's metrics: its id while it holds a slot, else
/// [`OTHER_CONCERTS`]. Dropping it frees the slot (the series already exported stay until the
/// recorder's idle timeout drops them).
#[derive(Debug)]
pub struct ConcertLabel {
    value: String,
    slot: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
}

impl ConcertLabels {
    /// The label for `concert`, taking a slot if one is free.
    pub fn label(&self, concert: crate::ids::ConcertId) -> ConcertLabel {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        let free = self
            .0
            .fetch_update(AcqRel, Acquire, |n| {
                (n < MAX_CONCERT_LABELS).then_some(n + 1)
            })
            .is_ok();
        ConcertLabel {
            value: if free {
                concert.to_string()
            } else {
                OTHER_CONCERTS.to_owned()
            },
            slot: free.then(|| self.0.clone()),
        }
    }
}

impl ConcertLabel {
    /// The label value.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether the concert has its own label (gauges are only exported then: a gauge shared by
    /// many concerts would show whichever wrote last).
    pub fn is_own(&self) -> bool {
        self.slot.is_some()
    }
}

impl Drop for ConcertLabel {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            slot.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConcertId;

    #[test]
    fn concerts_past_the_cap_share_one_label_until_a_slot_is_freed() {
        let labels = ConcertLabels::default();
        let mut own: Vec<ConcertLabel> = (1..=MAX_CONCERT_LABELS as i64)
            .map(|c| labels.label(ConcertId::new(c)))
            .collect();
        assert!(own.iter().all(ConcertLabel::is_own));
        assert_eq!(own[6].value(), "7");
        let extra = labels.label(ConcertId::new(1_000));
        assert_eq!((extra.value(), extra.is_own()), (OTHER_CONCERTS, false));
        drop(extra);
        own.pop();
        let next = labels.label(ConcertId::new(1_001));
        assert_eq!((next.value(), next.is_own()), ("1001", true));
    }
}
