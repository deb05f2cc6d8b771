//! The notifier: delivers each confirmed reservation from the outbox to the configured webhook
//! (`BOXOFFICE_WEBHOOK_URL`), off the request path, with retries and exponential backoff.
//!
//! Rows are leased before their POST, so concurrent workers never send one row twice at once
//! and a worker that dies mid-delivery leaves it to be retried after the lease. Delivery is at
//! least once; the body's `reservationId` (also the `Idempotency-Key` header) lets a receiver
//! deduplicate.

use std::time::Duration;

use boxoffice_domain::notifications::{self, Notification};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::startup::Deps;

/// Rows leased per round.
const BATCH: i64 = 64;
/// Deliveries in flight at once: enough to keep up with payments at thousands per second
/// against a fast receiver without opening hundreds of connections to a slow one.
const CONCURRENCY: usize = 16;

/// Runs until `cancel` fires; checks it only between rounds. Without a webhook URL it does
/// nothing (rows wait in the outbox until one is configured).
pub async fn run(ctx: Deps, cancel: CancellationToken) {
    let Some(url) = ctx.config.webhook_url.clone() else {
        tracing::info!("no BOXOFFICE_WEBHOOK_URL: reservations stay in the outbox undelivered");
        return;
    };
    let http = match reqwest::Client::builder()
        .timeout(ctx.config.notify_timeout)
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; notifier stopped");
            return;
        }
    };
    // The lease outlasts a delivery that times out, so a row is never sent twice at once.
    let lease = ctx.config.notify_timeout * 2 + Duration::from_secs(5);
    let mut every = tokio::time::interval(ctx.config.tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut gauge_refreshed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        loop {
            match round(&ctx, &http, &url, lease).await {
                // A full batch: more may be due; go again without waiting for the tick.
                Ok(n) if n as i64 == BATCH && !cancel.is_cancelled() => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e.report(), "notifier round failed; retrying next tick");
                    break;
                }
            }
        }
        // The backlog gauge is a count over the outbox: every few seconds is plenty.
        if gauge_refreshed.elapsed() >= Duration::from_secs(5) {
            gauge_refreshed = tokio::time::Instant::now();
            if let Ok(pending) = notifications::pg::pending(&ctx.pg).await {
                metrics::gauge!("boxoffice_notifications_pending").set(pending as f64);
            }
        }
    }
}

async fn round(
    ctx: &Deps,
    http: &reqwest::Client,
    url: &str,
    lease: Duration,
) -> boxoffice_domain::Result<usize> {
    let due = notifications::pg::lease_due(&ctx.pg, BATCH, lease).await?;
    let n = due.len();
    let results: Vec<(Notification, Result<(), String>)> = futures::stream::iter(due)
        .map(|n| async move {
            let result = deliver(http, url, &n).await;
            (n, result)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut delivered = Vec::with_capacity(n);
    for (notification, result) in results {
        match result {
            Ok(()) => delivered.push(notification.id),
            Err(error) => {
                let attempts = notification.attempts + 1;
                let wait = notifications::backoff(
                    attempts,
                    ctx.config.notify_backoff_base,
                    ctx.config.notify_backoff_cap,
                );
                metrics::counter!("boxoffice_notifications_total", "outcome" => "failed")
                    .increment(1);
                tracing::warn!(id = notification.id, attempts, ?wait, %error, "webhook delivery failed");
                notifications::pg::failed(&ctx.pg, notification.id, wait, &error).await?;
            }
        }
    }
    metrics::counter!("boxoffice_notifications_total", "outcome" => "delivered")
        .increment(delivered.len() as u64);
    notifications::pg::delivered(&ctx.pg, &delivered).await?;
    Ok(n)
}

async fn deliver(http: &reqwest::Client, url: &str, n: &Notification) -> Result<(), String> {
    let response = http
        .post(url)
        .header("Idempotency-Key", n.dedup_key())
        .header("X-Boxoffice-Topic", &n.topic)
        .json(&n.payload)
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("receiver answered {}", response.status()))
    }
}
