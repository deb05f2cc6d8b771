//! Graceful shutdown, as clients see it: after the signal the gateway turns `/readyz` to 503,
//! keeps serving through the readiness delay (every answer saying `Connection: close`), then
//! refuses new connections, answers what it already accepted, and stops.
//!
//! The clients here speak HTTP/1.1 by hand over one TCP connection each: a pooled client
//! (reqwest) silently retries a request that a closing connection dropped, which would hide
//! exactly the failure these tests look for.

use std::{
    net::SocketAddr,
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    sync::mpsc,
};

use crate::helpers::{
    buyers, create_concert, eventually, spawn_app_with, test_config, Sale, START_HINT,
};

/// The readiness delay under test: long enough for the probes to see the phase, short
/// enough for a test.
const DELAY: Duration = Duration::from_millis(2000);

/// The hard deadline of the drain.
const GRACE: Duration = Duration::from_secs(10);

/// Concurrent keep-alive clients.
const CLIENTS: usize = 16;

/// Answers each client gets before the shutdown starts, so that every connection is
/// accepted (answered once) and busy when the signal comes.
const WARM: usize = 5;

/// One HTTP/1.1 connection.
struct Conn(BufReader<TcpStream>);

/// A complete response: status line, headers and the whole `Content-Length` body.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The response said `Connection: close`.
    close: bool,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self(BufReader::new(stream)))
    }

    /// Writes raw request bytes (possibly part of a request).
    async fn write(&mut self, bytes: &str) -> std::io::Result<()> {
        self.0.get_mut().write_all(bytes.as_bytes()).await
    }

    /// Sends a whole request and reads its answer.
    async fn send(&mut self, request: &str) -> std::io::Result<Answer> {
        self.write(request).await?;
        self.answer().await
    }

    /// Reads one complete response; an error if the connection ends before it is whole.
    async fn answer(&mut self) -> std::io::Result<Answer> {
        use std::io::{Error, ErrorKind};
        let cut = |what: &str| Error::new(ErrorKind::UnexpectedEof, format!("closed {what}"));
        let mut line = String::new();
        if self.0.read_line(&mut line).await? == 0 {
            return Err(cut("before the status line"));
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::new(ErrorKind::InvalidData, line.clone()))?;
        let (mut length, mut close) = (0usize, false);
        loop {
            line.clear();
            if self.0.read_line(&mut line).await? == 0 {
                return Err(cut("within the headers"));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| Error::new(ErrorKind::InvalidData, header.to_owned()))?;
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => {
                    length = value
                        .parse()
                        .map_err(|_| Error::new(ErrorKind::InvalidData, header.to_owned()))?
                }
                "connection" => close = value.eq_ignore_ascii_case("close"),
                "transfer-encoding" => {
                    return Err(Error::new(ErrorKind::Unsupported, header.to_owned()))
                }
                _ => {}
            }
        }
        let mut body = vec![0; length];
        self.0.read_exact(&mut body).await?;
        Ok(Answer { status, close })
    }
}

/// A request's bytes.
fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: boxoffice\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("content-type: application/json\r\n");
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    request
}

/// `GET path` on a fresh connection.
async fn get(addr: SocketAddr, path: &str) -> std::io::Result<Answer> {
    Conn::open(addr)
        .await?
        .send(&request("GET", path, &[], ""))
        .await
}

/// Whether `addr` refuses a new connection.
async fn refuses(addr: SocketAddr) -> bool {
    matches!(TcpStream::connect(addr).await, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// Sends `requests` in turn, round and round, on one keep-alive connection opened now, until
/// an answer says `Connection: close` (the replica is leaving; a balancer takes it out).
/// Signals `warm` after [`WARM`] answers. Returns how many answers it got, or what went
/// wrong with a request on this accepted connection.
async fn client(
    addr: SocketAddr,
    requests: Vec<String>,
    warm: mpsc::Sender<()>,
) -> Result<usize, String> {
    let mut conn = Conn::open(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut answered = 0;
    for request in requests.iter().cycle() {
        let answer = conn
            .send(request)
            .await
            .map_err(|e| format!("request after {answered} answers got no answer: {e}"))?;
        answered += 1;
        if answer.status >= 500 {
            return Err(format!("answer {answered} was {answer:?}: {request}"));
        }
        if answered == WARM {
            let _ = warm.send(()).await;
        }
        if answer.close {
            return Ok(answered);
        }
    }
    unreachable!("cycle() never ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_request_is_answered_during_shutdown() {
    let delay_ms = DELAY.as_millis().to_string();
    let grace_secs = GRACE.as_secs().to_string();
    let config = test_config(&[
        ("BOXOFFICE_SHUTDOWN_READINESS_DELAY_MS", &delay_ms),
        ("BOXOFFICE_SHUTDOWN_GRACE_SECS", &grace_secs),
        ("BOXOFFICE_TICKET_LIMIT", "1000000"),
    ]);
    let app = spawn_app_with(config).await;
    let (addr, admin) = (app.addr, app.admin_addr);
    let concert = create_concert(&app.pg, Sale::Open, 0, 0, Some(1_000_000)).await;
    let ga = concert.ga_section.unwrap();
    let buyers = buyers(&app, concert.id, CLIENTS + 1).await;
    let hold = |i: usize| {
        let buyer = &buyers[i];
        request(
            "POST",
            &format!("/api/v1/schedules/{}/holds", concert.schedule),
            &[
                ("authorization", &buyer.user.bearer()),
                ("queue-token", &buyer.queue_token),
            ],
            &json!({ "sectionId": ga, "quantity": 1 }).to_string(),
        )
    };

    // Cheap GETs, a read of Postgres through the cache, and a hold through the batcher.
    let (warm_tx, mut warm) = mpsc::channel(CLIENTS);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let requests = vec![
                request("GET", "/hello", &[], ""),
                request("GET", &format!("/api/v1/concerts/{}", concert.id), &[], ""),
                hold(i),
            ];
            tokio::spawn(client(addr, requests, warm_tx.clone()))
        })
        .collect();
    for _ in 0..CLIENTS {
        warm.recv()
            .await
            .expect("a client failed before the shutdown");
    }

    // The signal, while every client has a request in flight or about to be.
    let signalled = Instant::now();
    let stopped = tokio::spawn(app.stop());

    // Readiness off, but still serving: new connections are accepted and answered normally,
    // and told to close.
    eventually("/readyz to answer 503", DELAY, || async {
        matches!(get(addr, "/readyz").await, Ok(Answer { status: 503, .. }))
    })
    .await;
    let hello = get(addr, "/hello")
        .await
        .expect("a new connection during the readiness delay is served");
    assert_eq!(hello.status, 200);
    assert!(
        hello.close,
        "answers during the delay say Connection: close"
    );
    let held = Conn::open(addr)
        .await
        .expect("a new connection during the readiness delay is served")
        .send(&hold(CLIENTS))
        .await
        .expect("a hold during the readiness delay is answered");
    assert_eq!(held.status, 201, "holds go on during the readiness delay");
    assert!(held.close);

    // A request that is still arriving when the listeners close: its connection was accepted,
    // so it is answered, and the drain waits for it.
    let mut slow = Conn::open(addr).await.expect("accepted during the delay");
    slow.write("GET /hello HTTP/1.1\r\nhost: boxoffice\r\n")
        .await
        .expect("first half of the request");

    eventually(
        "the public port to refuse connections",
        DELAY + GRACE,
        || refuses(addr),
    )
    .await;
    let accepting_for = signalled.elapsed();
    assert!(
        accepting_for >= DELAY,
        "the listener closed {accepting_for:?} after the signal, before the {DELAY:?} delay"
    );
    assert!(
        refuses(admin).await,
        "the admin port closes with the public one"
    );
    assert!(
        !stopped.is_finished(),
        "the gateway stopped with a request still in flight"
    );
    slow.write("\r\n").await.expect("rest of the request");
    let answer = slow
        .answer()
        .await
        .expect("the in-flight request is answered");
    assert_eq!(answer.status, 200);
    assert!(answer.close);

    // Every client's connection ended with an answer saying so, never mid-request.
    for client in clients {
        let answered = client.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert!(answered > WARM);
    }
    tokio::time::timeout(DELAY + GRACE, stopped)
        .await
        .expect("run returns within the readiness delay and the grace")
        .expect("run returned Ok");
    assert!(
        signalled.elapsed() < DELAY + GRACE,
        "shutdown took {:?}",
        signalled.elapsed()
    );
}

/// A port nobody listens on now: bound, read back, released. Another process could take it
/// before the child binds it; the child would then fail to start, and the test with it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test]
async fn sigterm_stops_the_gateway_process_in_phases_and_it_exits_zero() {
    let (http, admin) = (free_port(), free_port());
    let (addr, admin): (SocketAddr, SocketAddr) = (
        format!("127.0.0.1:{http}").parse().unwrap(),
        format!("127.0.0.1:{admin}").parse().unwrap(),
    );
    let namespace = format!("t-{}", uuid::Uuid::new_v4().simple());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_boxoffice-gateway"))
        .env("BOXOFFICE_HTTP_ADDR", addr.to_string())
        .env("BOXOFFICE_ADMIN_ADDR", admin.to_string())
        .env("BOXOFFICE_REDIS_NAMESPACE", namespace)
        .env("BOXOFFICE_SHUTDOWN_READINESS_DELAY_MS", "1000")
        .env("BOXOFFICE_SHUTDOWN_GRACE_SECS", "5")
        .env("BOXOFFICE_GATEWAY_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the gateway binary starts");
    eventually(START_HINT, Duration::from_secs(30), || async {
        matches!(get(addr, "/readyz").await, Ok(Answer { status: 200, .. }))
    })
    .await;

    let pid = child.id().expect("the child runs").to_string();
    let signalled = Instant::now();
    let kill = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(kill.success());

    eventually("/readyz to answer 503", Duration::from_secs(1), || async {
        matches!(get(admin, "/readyz").await, Ok(Answer { status: 503, .. }))
    })
    .await;
    let hello = get(addr, "/hello")
        .await
        .expect("served during the readiness delay");
    assert_eq!((hello.status, hello.close), (200, true));
    eventually(
        "the public port to refuse connections",
        Duration::from_secs(6),
        || refuses(addr),
    )
    .await;
    assert!(signalled.elapsed() >= Duration::from_secs(1));
    let status = tokio::time::timeout(Duration::from_secs(6), child.wait())
        .await
        .expect("the gateway exits within the delay and the grace")
        .expect("wait for the gateway");
    assert!(status.success(), "the gateway exited with {status}");
}
