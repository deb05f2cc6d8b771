//! Durability of the hot state: what Redis acknowledged survives Redis being killed.
//!
//! These tests run a Redis of their own (Debian's `redis-server`, with the project's
//! `redis/redis.conf`, on a free port and in a fresh directory), because they kill it with
//! `SIGKILL` and start it again: a real process fault, which the shared stack's Redis cannot be
//! put through while other tests use it. No worker runs, so nothing is mirrored to Postgres:
//! whatever the buyers find after the restart came back from Redis's append-only file alone.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::*;

/// A Redis process of the test's own.
struct OwnRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
    fsync: &'static str,
}

impl OwnRedis {
    /// Starts `redis-server redis/redis.conf` with `appendfsync` set to `fsync`, and waits
    /// until it answers.
    async fn start(fsync: &'static str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("bo-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("redis data directory");
        let child = Self::spawn(port, &dir, fsync);
        let redis = Self {
            child,
            port,
            dir,
            fsync,
        };
        redis.wait_ready().await;
        redis
    }

    fn spawn(port: u16, dir: &PathBuf, fsync: &str) -> Child {
        let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/../redis/redis.conf");
        Command::new("redis-server")
            .arg(conf)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(dir)
            .args(["--appendfsync", fsync, "--daemonize", "no", "--logfile", ""])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/stack start installs it)")
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `SIGKILL`s Redis (no chance to flush anything) and starts it again on the same port and
    /// directory; returns once it answers `PONG` (it answers `LOADING` while it replays).
    async fn kill_9_and_restart(&mut self) {
        self.child.kill().expect("SIGKILL redis");
        self.child.wait().expect("redis reaped");
        self.child = Self::spawn(self.port, &self.dir, self.fsync);
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        let port = self.port;
        eventually(
            "the test's Redis answers PONG",
            Duration::from_secs(20),
            || async move {
                let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)).await else {
                    return false;
                };
                let mut reply = [0u8; 5];
                conn.write_all(b"PING\r\n").await.is_ok()
                    && conn.read_exact(&mut reply).await.is_ok()
                    && &reply == b"+PONG"
            },
        )
        .await;
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `POST /concerts/{id}/queue` for `user`: (status, body).
async fn join(app: &TestApp, concert: i64, user: &User) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(&format!("/api/v1/concerts/{concert}/queue")))
        .header("authorization", user.bearer())
        .send()
        .await
        .expect(START_HINT);
    let status = response.status().as_u16();
    (status, response.json().await.expect("join body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_hold_and_every_place_in_line_survive_a_redis_kill_9() {
    // `always`: every acknowledged write is on disk before its reply, so nothing may be lost.
    // (`everysec`, the default, may lose the last second or so: redis/redis.conf.)
    let mut redis = OwnRedis::start("always").await;
    let app = spawn_app_with(test_config(&[("BOXOFFICE_REDIS_URL", &redis.url())])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 10, None).await;
    let buyer = buyers(&app, concert.id, 1).await.remove(0);
    charge(&app, &buyer.user, 10_000).await;
    let seat = seat_ids(&app.pg, concert.sections[0]).await[0];
    let hold = hold_ok(&app, &buyer, concert.schedule, json!({ "seatIds": [seat] })).await;
    let hold_id = hold["holdId"].as_str().expect("holdId").to_owned();

    let mut waiting = Vec::new();
    for i in 0..5 {
        waiting.push(sign_up(&app.http, &app.url(""), &format!("waiting-{i}")).await);
    }
    let mut positions = Vec::new();
    for user in &waiting {
        let (status, body) = join(&app, concert.id.get(), user).await;
        assert_eq!(status, 201, "first join: {body}");
        positions.push(body["position"].as_i64().expect("position"));
    }
    assert_eq!(positions, vec![1, 2, 3, 4, 5]);

    redis.kill_9_and_restart().await;

    // The app's connections come back by themselves; until they do, a payment is answered 503
    // (Retry-After), which a client retries with the same key.
    let key = format!("k-{hold_id}");
    let (status, body) = eventually(
        "the payment is answered by a reconnected gateway",
        Duration::from_secs(20),
        || {
            let (app, user, hold_id, key) = (&app, &buyer.user, &hold_id, &key);
            async move {
                let response = pay(&app.http, &app.url(""), user, hold_id, key).await;
                let status = response.status().as_u16();
                let body: Value = response.json().await.expect("payment body");
                (status != 503).then_some((status, body))
            }
        },
    )
    .await;
    assert_eq!(
        status, 201,
        "the acknowledged hold is still payable: {body}"
    );

    for (user, position) in waiting.iter().zip(positions) {
        let (status, body) = join(&app, concert.id.get(), user).await;
        assert_eq!(status, 200, "joining again finds the place kept: {body}");
        assert_eq!(body["position"], position, "{body}");
    }
    app.stop().await;
}
