//! A Redis outage is logged once (not once per request), and so is its end. Its own test
//! binary: it installs a global log subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::redis::{fast_config, wait_until, RedisServer, LONG};
use lightport::server::limits::{FailMode, Store};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap()).matches(needle).count()
    }
}

const DOWN: &str = "Redis unreachable";
const UP: &str = "Redis reachable again";

/// Many operations over a few reconnection attempts.
async fn traffic(s: &Store) {
    for _ in 0..30 {
        assert!(s.window("key:log", 1, 1000, LONG).await.unwrap().allowed);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_outage_is_logged_once() {
    let logs = Capture::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let mut server = RedisServer::start();
    let s = Store::redis_with(&server.url(), FailMode::Open, fast_config()).await.unwrap();
    traffic(&s).await;
    assert_eq!((logs.count(DOWN), logs.count(UP)), (0, 0));

    for outage in 1..=2 {
        server.stop();
        traffic(&s).await;
        assert!(!s.backend_healthy());
        assert_eq!(logs.count(DOWN), outage, "one warning for outage {outage}");
        server.restart();
        wait_until("healthy again", async || s.backend_healthy()).await;
        traffic(&s).await;
        assert_eq!((logs.count(DOWN), logs.count(UP)), (outage, outage));
    }

    // Unreachable at start: one warning too, then one recovery.
    server.stop();
    let late = Store::redis_with(&server.url(), FailMode::Open, fast_config()).await.unwrap();
    traffic(&late).await;
    assert_eq!(logs.count("Redis unreachable at start"), 1);
    server.restart();
    wait_until("both healthy", async || s.backend_healthy() && late.backend_healthy()).await;
    // `s` saw this outage too: 3 outages of `s` + 1 of `late`.
    assert_eq!((logs.count(DOWN), logs.count(UP)), (4, 4));
}
