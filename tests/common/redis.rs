//! A private redis-server per test: started on a free loopback port with persistence off,
//! ready once it answers PING, killed on drop.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lightport::server::limits::StoreConfig;

/// Bound on every wait in these tests (never a pass condition, only a give-up point).
pub const DEADLINE: Duration = Duration::from_secs(15);

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

fn binary() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

fn pings(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Self {
        let child = Command::new(binary())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "redis-server not found: the Redis tests need it. Install it with \
                 `apt-get install -y redis-server` (or set REDIS_SERVER_BIN)."
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        let mut server = RedisServer { port, child: Some(child) };
        let start = Instant::now();
        while !pings(port) {
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("redis-server on port {port} exited at start: {status}");
            }
            assert!(start.elapsed() < DEADLINE, "redis-server did not answer PING");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the server and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        *self = Self::start_on(self.port);
    }

    /// Sends SIGSTOP (`pause = true`) or SIGCONT: a hung server that accepts but never answers.
    pub fn pause(&self, pause: bool) {
        let sig = if pause { "-STOP" } else { "-CONT" };
        let ok = Command::new("kill").args([sig, &self.pid().to_string()]).status().expect("kill").success();
        assert!(ok, "kill {sig} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = Command::new("kill").args(["-CONT", &self.pid().to_string()]).status();
        }
        self.stop();
    }
}

/// Fast reconnection and health checks for tests; a command timeout generous enough that a
/// busy test machine never trips it by accident (the hung-server test sets its own).
pub fn fast_config() -> StoreConfig {
    StoreConfig {
        command_timeout: Duration::from_secs(2),
        reconnect_max_backoff: Duration::from_millis(100),
        health_interval: Duration::from_millis(100),
        ..StoreConfig::default()
    }
}

/// Polls `f` until it is true, failing the test at `DEADLINE`.
pub async fn wait_until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A raw connection to inspect what the store wrote.
pub async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// A window so long (2^40 ms, ~35 years; next boundary in 2039) that no test crosses its end.
pub const LONG: Duration = Duration::from_millis(1 << 40);
