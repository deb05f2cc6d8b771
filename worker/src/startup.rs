//! Builds the worker: the sqlx pool (migrations applied), Redis, the scripts, and one task per
//! loop. Every loop gets a cancellation token and checks it only between ticks or batches.

use std::{future::Future, time::Duration};

use anyhow::Context;
use axum::{routing::get, Router};
use boxoffice_domain::{redis::Hot, telemetry, Config};
use secrecy::ExposeSecret;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What every loop shares.
#[derive(Clone)]
pub struct Deps {
    pub config: Config,
    pub pg: PgPool,
    /// Redis: the pool, the scripts and the keyspace.
    pub hot: Hot,
}

/// A built worker, not yet running.
pub struct Worker {
    ctx: Deps,
    admin: TcpListener,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// Connects the sqlx pool.
pub async fn pg_pool(config: &Config) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect(config.database_url.expose_secret())
        .await
        .context("connecting to Postgres")
}

/// Applies every pending migration in `migrations/`.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let pg = pg_pool(config).await?;
    sqlx::migrate!("../migrations")
        .run(&pg)
        .await
        .context("applying migrations")?;
    tracing::info!("migrations applied");
    Ok(())
}

impl Worker {
    /// Connects everything, applies migrations and binds the metrics listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let metrics = telemetry::init_metrics(None)?;
        let pg = pg_pool(&config).await?;
        sqlx::migrate!("../migrations")
            .run(&pg)
            .await
            .context("applying migrations")?;
        let hot = Hot::connect(
            &config.redis_url,
            config.redis_pool_size,
            &config.redis_namespace,
        )
        .await?;
        let admin = TcpListener::bind(config.admin_addr)
            .await
            .with_context(|| format!("binding {}", config.admin_addr))?;
        Ok(Self {
            ctx: Deps { config, pg, hot },
            admin,
            metrics,
        })
    }

    /// The shared context, for tests.
    pub fn context(&self) -> &Deps {
        &self.ctx
    }

    /// Runs every loop until `shutdown` resolves, then waits for each to reach a safe point.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let cancel = CancellationToken::new();
        // If this future is dropped (a test aborting its worker, a panic unwinding), the loops
        // stop too instead of running on unowned: as if the process had died.
        let _stop_loops_on_drop = cancel.clone().drop_guard();
        let metrics = self.metrics.clone();
        let admin = Router::new()
            .route(
                "/metrics",
                get(move || std::future::ready(metrics.render())),
            )
            .route("/healthz", get(|| std::future::ready("ok")));
        let admin_cancel = cancel.clone();
        let admin_listener = self.admin;
        let mut tasks = vec![tokio::spawn(async move {
            let _ = axum::serve(admin_listener, admin)
                .with_graceful_shutdown(async move { admin_cancel.cancelled().await })
                .await;
        })];
        tasks.extend(crate::loops(&self.ctx, &cancel));
        tracing::info!(worker = %self.ctx.config.worker_id, "worker running");
        shutdown.await;
        cancel.cancel();
        for task in tasks {
            task.await.context("a worker loop panicked")?;
        }
        self.ctx.pg.close().await;
        self.ctx.hot.close().await;
        tracing::info!("worker stopped");
        Ok(())
    }
}
