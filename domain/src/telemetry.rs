//! Logging and the Prometheus recorder, shared by both binaries.
//!
//! Metric names follow `boxoffice_<area>_<what>_<unit>`; counters end in `_total`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use std::time::Duration;
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
        LogFormat::Text => registry.with(fmt::layer()).try_init(),
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
