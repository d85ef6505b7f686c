//! The Redis test harness itself (`tests/redis_support`): a started server answers, a stopped
//! one refuses connections on a free port, a restarted one answers again on the same port,
//! empty. Skipped when redis-server is missing (a failure with
//! `TOWER_RELIABILITY_REQUIRE_REDIS=1`, as in CI).
mod common;
mod redis_support;

use std::{io::ErrorKind, net::TcpStream, time::Duration};

use redis_support::{start_or_skip, start_or_skip_blocking, Reply};

/// Whether a plain TCP connect to the server's port is refused.
fn refused(addr: std::net::SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
        Ok(_) => false,
        Err(err) => err.kind() == ErrorKind::ConnectionRefused,
    }
}

#[tokio::test]
async fn a_started_server_answers_ping_and_commands() {
    let Some(redis) = start_or_skip("a_started_server_answers_ping_and_commands").await else {
        return;
    };
    assert!(redis.ping().await, "no PONG; log:\n{}", redis.log_tail(20));
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));

    assert_eq!(
        redis.command(&["SET", "k", "v"]).await.unwrap(),
        Reply::Status("OK".into())
    );
    assert_eq!(
        redis
            .command(&["GET", "k"])
            .await
            .unwrap()
            .text()
            .as_deref(),
        Some("v")
    );
    // No persistence: nothing is saved, nothing is appended.
    let save = redis.command(&["CONFIG", "GET", "save"]).await.unwrap();
    assert_eq!(
        save,
        Reply::Array(Some(vec![
            Reply::Bulk(Some(b"save".to_vec())),
            Reply::Bulk(Some(Vec::new()))
        ]))
    );
}

// Paused time, as many of the crate's tests use: the harness waits on real clocks regardless.
#[tokio::test(start_paused = true)]
async fn stop_refuses_connections_and_restart_answers_again_on_the_same_port() {
    let name = "stop_refuses_connections_and_restart_answers_again_on_the_same_port";
    let Some(mut redis) = start_or_skip(name).await else {
        return;
    };
    let (port, addr) = (redis.port(), redis.addr());
    // A connection open across the stop, as a store's would be.
    let open = TcpStream::connect(addr).unwrap();
    redis.command(&["SET", "before", "1"]).await.unwrap();

    redis.stop().await;
    assert!(!redis.is_running());
    assert!(refused(addr), "port {port} still accepts after stop");
    assert!(!redis.ping().await);
    assert!(redis.command(&["PING"]).await.is_err());
    redis.stop().await; // a second stop is a no-op

    redis.restart().await;
    assert_eq!(redis.port(), port, "restart moved the port");
    assert!(redis.ping().await, "no PONG after restart");
    // A fresh server: what was written before the stop is gone.
    assert_eq!(
        redis.command(&["GET", "before"]).await.unwrap(),
        Reply::Bulk(None)
    );
    drop(open);

    // Restarting a running server stops it first.
    let pid = redis.pid();
    redis.restart().await;
    assert_ne!(redis.pid(), pid);
    assert!(redis.ping().await);
}

#[test]
fn blocking_api_and_drop_kill_the_server() {
    let Some(mut redis) = start_or_skip_blocking("blocking_api_and_drop_kill_the_server") else {
        return;
    };
    let (addr, dir) = (redis.addr(), redis.dir().to_path_buf());
    assert!(redis.ping_blocking());
    redis.stop_blocking();
    assert!(
        refused(addr),
        "port {} still accepts after stop",
        addr.port()
    );
    redis.restart_blocking();
    assert!(redis.ping_blocking());

    drop(redis);
    assert!(refused(addr), "the server outlived its handle");
    assert!(!dir.exists(), "the temp dir outlived its handle");
}
