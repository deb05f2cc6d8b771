//! Builds the gateway: pools, scripts, state, listeners. Tests call [`Application::build`]
//! with port 0 and read the bound ports back.

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context;
use axum::Router;
use boxoffice_domain::{
    identity::AccessTokens, queue::QueueTokens, redis::Hot, telemetry, tokens::Signer, Config,
};
use deadpool_postgres::{ManagerConfig, RecyclingMethod, Runtime};
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown, service::TowerToHyperService};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::{router, state::AppState};

/// A built, bound, not yet running gateway.
pub struct Application {
    state: AppState,
    public: (TcpListener, Router),
    admin: (TcpListener, Router),
}

impl Application {
    /// Connects to Postgres and Redis, loads the scripts and binds both listeners.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let metrics = telemetry::init_metrics(Some(crate::telemetry::IDLE_METRICS))?;
        let pg = pg_pool(&config)?;
        let hot = Hot::connect(
            &config.redis_url,
            config.redis_pool_size,
            &config.redis_namespace,
        )
        .await?;
        let signer = Signer::new(config.jwt_secret_bytes());
        let access = AccessTokens::new(signer.clone(), config.access_token_ttl);
        let queue_tokens = QueueTokens::new(signer);
        let public_listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("binding {}", config.http_addr))?;
        let admin_listener = TcpListener::bind(config.admin_addr)
            .await
            .with_context(|| format!("binding {}", config.admin_addr))?;
        let state = AppState::new(config, pg, hot, access, queue_tokens);
        spawn_limiter_upkeep(&state);
        spawn_batches(&state);
        let public = router::public(state.clone());
        let admin = router::admin(state.clone(), metrics);
        Ok(Self {
            state,
            public: (public_listener, public),
            admin: (admin_listener, admin),
        })
    }

    /// The bound public address (port 0 resolved).
    pub fn public_addr(&self) -> SocketAddr {
        self.public
            .0
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .0
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Shared state, for tests that reach into the pools.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then drains: readiness off, stop accepting, wait for
    /// in-flight requests up to the configured grace, close the pools.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let grace = self.state.config.shutdown_grace;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tracing::info!(public = %self.public_addr(), admin = %self.admin_addr(), "gateway listening");
        let public = tokio::spawn(serve(self.public.0, self.public.1, stop_rx.clone(), grace));
        let admin = tokio::spawn(serve(self.admin.0, self.admin.1, stop_rx.clone(), grace));
        let queue = tokio::spawn(queue_upkeep(self.state.clone(), stop_rx));
        shutdown.await;
        self.state.stop_accepting();
        let _ = stop_tx.send(true);
        public.await.context("public server task")?;
        admin.await.context("admin server task")?;
        queue.await.context("queue upkeep task")?;
        self.state.pg.close();
        tracing::info!("gateway stopped");
        Ok(())
    }
}

fn pg_pool(config: &Config) -> anyhow::Result<deadpool_postgres::Pool> {
    let pg_config: tokio_postgres::Config = config
        .database_url
        .expose_secret()
        .parse()
        .context("BOXOFFICE_DATABASE_URL is not a Postgres URL")?;
    let manager = deadpool_postgres::Manager::from_config(
        pg_config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(config.pg_pool_size)
        .runtime(Runtime::Tokio1)
        // A request waits at most this long for a connection, then gets a 503: better than a
        // queue that grows without bound under overload.
        .wait_timeout(Some(Duration::from_secs(2)))
        .create_timeout(Some(Duration::from_secs(2)))
        .build()
        .context("building the Postgres pool")
}

/// The loops that send this replica's holds to Redis and record its payments in batches.
/// They live as long as the runtime: a batch in flight finishes before graceful shutdown ends,
/// because its requests are in flight too.
fn spawn_batches(state: &AppState) {
    for _ in 0..boxoffice_domain::holds::batch::LOOPS {
        let state = state.clone();
        tokio::spawn(async move {
            let terms = state.store().terms();
            state.holds.run(&state.hot, terms).await
        });
    }
    for _ in 0..boxoffice_domain::payments::batch::LOOPS {
        let state = state.clone();
        tokio::spawn(async move { state.payments.run(state.store()).await });
    }
}

/// Forgets per-user limiter entries of users who went quiet, so memory stays bounded.
fn spawn_limiter_upkeep(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(10));
        loop {
            every.tick().await;
            state.limiter.retain_recent();
        }
    });
}

/// The waiting room's background work on this replica, until `stop` flips: refresh the
/// admission state and ended log of every concert it serves every
/// `BOXOFFICE_QUEUE_STATE_TTL_MS`, and write the buffered poll heartbeats every
/// `BOXOFFICE_QUEUE_HEARTBEAT_FLUSH_MS` (once more on the way out, so a draining replica does
/// not make its pollers look silent).
async fn queue_upkeep(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut refresh = tokio::time::interval(state.config.queue_state_ttl);
    let mut flush = tokio::time::interval(state.config.queue_heartbeat_flush);
    // A late tick is not worth a burst of catch-up refreshes.
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = refresh.tick() => state.caches.queue.refresh_all().await,
            _ = flush.tick() => {
                if let Err(e) = state.room.flush_heartbeats().await {
                    tracing::warn!(error = %e.report(), "heartbeat flush failed");
                }
            }
            _ = stop.changed() => break,
        }
    }
    if let Err(e) = state.room.flush_heartbeats().await {
        tracing::warn!(error = %e.report(), "final heartbeat flush failed");
    }
}

/// Accepts connections until `stop` flips, then waits up to `grace` for open ones to finish.
async fn serve(
    listener: TcpListener,
    router: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                let conn = http.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(grace) => tracing::warn!(?grace, "grace period over; closing remaining connections"),
    }
}
