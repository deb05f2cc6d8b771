//! Builds the gateway: pools, scripts, state, listeners. Tests call [`Application::build`]
//! with port 0 and read the bound ports back.

use std::{
    future::Future,
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{
    extract::State,
    http::{header, HeaderValue},
    middleware,
    response::Response,
    Router,
};
use boxoffice_domain::{
    identity::AccessTokens, queue::QueueTokens, redis::Hot, telemetry, tokens::Signer, Config,
};
use deadpool_postgres::{ManagerConfig, RecyclingMethod, Runtime};
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown, service::TowerToHyperService};
use secrecy::ExposeSecret;
use tokio::{
    net::TcpListener,
    task::{JoinHandle, JoinSet},
};
use tokio_util::sync::CancellationToken;

use crate::{router, state::AppState};

/// A built, bound, not yet running gateway.
pub struct Application {
    state: AppState,
    public: (TcpListener, Router),
    admin: (TcpListener, Router),
    /// The tasks `build` spawned, stopped and awaited by [`Application::run`].
    background: Background,
}

/// The background tasks of a gateway, kept so that shutdown can wait for them.
struct Background {
    /// Fires after the drain: the upkeep loops stop at their next tick.
    stop: CancellationToken,
    batches: Vec<JoinHandle<()>>,
    limiter: JoinHandle<()>,
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
        let stop = CancellationToken::new();
        let background = Background {
            limiter: spawn_limiter_upkeep(&state, stop.clone()),
            batches: spawn_batches(&state),
            stop,
        };
        let public = router::public(state.clone()).layer(middleware::map_response_with_state(
            state.clone(),
            close_when_draining,
        ));
        let admin = router::admin(state.clone(), metrics);
        Ok(Self {
            state,
            public: (public_listener, public),
            admin: (admin_listener, admin),
            background,
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

    /// Serves until `shutdown` resolves, then stops in phases, each logged with its duration
    /// (pingora's order: a grace period while the balancer moves away, then a hard deadline):
    ///
    /// 1. Readiness off: `/readyz` answers 503.
    /// 2. Readiness delay (`BOXOFFICE_SHUTDOWN_READINESS_DELAY_MS`): still serving normally,
    ///    but every response says `Connection: close`, so nginx stops reusing (and keeping)
    ///    connections to this replica while a balancer that polls `/readyz` takes it out.
    /// 3. Accept stop: both listeners close; new connections are refused, which nginx's
    ///    passive check turns into a retry on another replica and a down mark on this one.
    /// 4. Drain, bounded by one deadline `BOXOFFICE_SHUTDOWN_GRACE_SECS` away: every open
    ///    connection finishes its request in flight and closes (hyper-util's
    ///    `GracefulShutdown`); then the hold and payment batchers answer what is queued and
    ///    stop, and the limiter and queue upkeep stop (the queue's after a last heartbeat
    ///    flush). Whatever is still running at the deadline is aborted.
    /// 5. Redis and Postgres are closed; returns `Ok`, and the process exits 0.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            state,
            public,
            admin,
            background,
        } = self;
        let (delay, grace) = (
            state.config.shutdown_readiness_delay,
            state.config.shutdown_grace,
        );
        tracing::info!(public = %public.0.local_addr()?, admin = %admin.0.local_addr()?, "gateway listening");
        let accepting = CancellationToken::new();
        let public = tokio::spawn(accept(public.0, public.1, accepting.clone()));
        let admin = tokio::spawn(accept(admin.0, admin.1, accepting.clone()));
        let queue = tokio::spawn(queue_upkeep(state.clone(), background.stop.clone()));
        shutdown.await;

        // 1.
        let started = Instant::now();
        state.stop_accepting();
        tracing::info!(phase = "readiness off", "shutdown: /readyz answers 503");

        // 2. The time a balancer needs to notice; requests go on as usual meanwhile.
        let phase = Instant::now();
        tokio::time::sleep(delay).await;
        tracing::info!(phase = "readiness delay", took = ?phase.elapsed(), "shutdown: delay over");

        // 3.
        let phase = Instant::now();
        accepting.cancel();
        let public = public.await.context("public accept loop")?;
        let admin = admin.await.context("admin accept loop")?;
        tracing::info!(phase = "accept stop", took = ?phase.elapsed(), "shutdown: listeners closed");

        // 4. One deadline for everything that is still running.
        let phase = Instant::now();
        let deadline = phase + grace;
        let drained = tokio::time::timeout_at(deadline.into(), async {
            tokio::join!(public.graceful.shutdown(), admin.graceful.shutdown())
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                ?grace,
                "shutdown: deadline reached; closing the remaining connections"
            );
        }
        // Connections that outlived the deadline are cut here, before the pools close
        // under them.
        let (mut public_tasks, mut admin_tasks) = (public.tasks, admin.tasks);
        tokio::join!(public_tasks.shutdown(), admin_tasks.shutdown());
        tracing::info!(phase = "connection drain", took = ?phase.elapsed(), complete = drained.is_ok(), "shutdown: connections closed");
        // No request is left to queue a hold or a payment: the batchers answer what is
        // queued and return, and the upkeep loops stop at their next tick.
        let phase = Instant::now();
        state.holds.close();
        state.payments.close();
        background.stop.cancel();
        let tasks = background
            .batches
            .into_iter()
            .chain([background.limiter, queue]);
        let finished = join_by(deadline, tasks).await;
        tracing::info!(phase = "background drain", took = ?phase.elapsed(), complete = finished, "shutdown: batches and upkeep stopped");

        // 5.
        let phase = Instant::now();
        state.hot.close().await;
        state.pg.close();
        tracing::info!(phase = "close pools", took = ?phase.elapsed(), "shutdown: Redis and Postgres closed");
        tracing::info!(took = ?started.elapsed(), "gateway stopped");
        Ok(())
    }
}

/// Waits for every task until `deadline`, then aborts those still running. Whether every task
/// ended on its own in time; a task that panicked is logged, not propagated: the process is
/// stopping anyway, and the rest still deserve their turn.
async fn join_by(deadline: Instant, tasks: impl IntoIterator<Item = JoinHandle<()>>) -> bool {
    let mut complete = true;
    for mut task in tasks {
        match tokio::time::timeout_at(deadline.into(), &mut task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "a background task failed"),
            Err(_) => {
                complete = false;
                task.abort();
            }
        }
    }
    if !complete {
        tracing::warn!("shutdown: deadline reached; background tasks aborted");
    }
    complete
}

/// While the replica drains (phase 2 of [`Application::run`]), asks the client to close its
/// connection after this response. nginx then keeps no connection to this replica, so the
/// accept stop and the drain find none of its connections idle: closing an idle keep-alive
/// connection races with nginx sending the next request on it, and a POST lost that way is
/// not retried.
async fn close_when_draining(State(state): State<AppState>, mut response: Response) -> Response {
    if !state.is_accepting() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
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
/// They run until their batcher is closed (after the drain) and its queue is empty.
fn spawn_batches(state: &AppState) -> Vec<JoinHandle<()>> {
    let holds = (0..boxoffice_domain::holds::batch::LOOPS).map(|_| {
        let state = state.clone();
        tokio::spawn(async move {
            let terms = state.store().terms();
            state.holds.run(&state.hot, terms).await
        })
    });
    let payments = (0..boxoffice_domain::payments::batch::LOOPS).map(|_| {
        let state = state.clone();
        tokio::spawn(async move { state.payments.run(state.store()).await })
    });
    holds.chain(payments).collect()
}

/// Forgets per-user limiter entries of users who went quiet, so memory stays bounded, until
/// `stop` fires.
fn spawn_limiter_upkeep(state: &AppState, stop: CancellationToken) -> JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = every.tick() => state.limiter.retain_recent(),
                () = stop.cancelled() => return,
            }
        }
    })
}

/// The waiting room's background work on this replica, until `stop` fires: refresh the
/// admission state and ended log of every concert it serves every
/// `BOXOFFICE_QUEUE_STATE_TTL_MS`, and write the buffered poll heartbeats every
/// `BOXOFFICE_QUEUE_HEARTBEAT_FLUSH_MS` (once more on the way out, after the last poll was
/// answered, so a draining replica does not make its pollers look silent).
async fn queue_upkeep(state: AppState, stop: CancellationToken) {
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
            () = stop.cancelled() => break,
        }
    }
    if let Err(e) = state.room.flush_heartbeats().await {
        tracing::warn!(error = %e.report(), "final heartbeat flush failed");
    }
}

/// The connections one listener accepted, for the drain.
struct Connections {
    /// Tells each connection to finish its request in flight and close; resolves when all
    /// have.
    graceful: GracefulShutdown,
    /// The connection tasks, so that those past the deadline can be cut.
    tasks: JoinSet<()>,
}

/// Accepts connections until `stop` fires, then closes the listener (new connections are
/// refused from then on) and hands back the open ones.
async fn accept(listener: TcpListener, router: Router, stop: CancellationToken) -> Connections {
    let graceful = GracefulShutdown::new();
    let mut tasks = JoinSet::new();
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
                tasks.spawn(async move {
                    let _ = conn.await;
                });
            }
            // Forget the connections that ended, so the set holds only open ones.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = stop.cancelled() => break,
        }
    }
    drop(listener);
    Connections { graceful, tasks }
}
