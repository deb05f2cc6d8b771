//! What the hold and payment batchers share: how one gathered batch is run.

use std::{future::Future, panic::AssertUnwindSafe};

use futures::FutureExt;

/// Runs one batch of `size` requests and records its size in the summary `size_metric`.
///
/// A bug that panics fails that batch's requests (their answers are dropped: 500), not the loop
/// running it: with every loop gone, requests would queue and never be answered.
pub(crate) async fn run(size_metric: &'static str, size: usize, batch: impl Future<Output = ()>) {
    metrics::histogram!(size_metric).record(size as f64);
    if AssertUnwindSafe(batch).catch_unwind().await.is_err() {
        tracing::error!(
            batch = size_metric,
            "a batch panicked; its requests were answered 500"
        );
    }
}
