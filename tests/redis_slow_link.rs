//! A process whose Redis replies arrive after its sync timeout (a slow link, made here by a
//! TCP proxy that delays every reply) keeps retrying its sync with the same cut. The cut has an
//! identity and an age: a retried sync must not stamp it "now" again, or the fleet re-adopts
//! it forever and its rate never grows back. Against a real `redis-server` on 127.0.0.1.
mod common;
mod redis_support;

use std::{sync::atomic::Ordering, time::Duration};

use common::eventually::eventually;
use redis_support::{fleet::unique_prefix, start_or_skip};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::Instant,
};
use tower_reliability::rate_limit::{RateLimitStore, RedisConfig, RedisStore, Signal, Ticket};

/// A proxy on 127.0.0.1 to `target` that passes everything at once, except the replies to
/// scripts (`EVAL` / `EVALSHA`), which come `delay` late: the connection's handshake is quick,
/// the script runs in Redis, and its answer misses the client's timeout. Returns its address.
async fn delaying_proxy(target: std::net::SocketAddr, delay: Duration) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(target).await else {
                continue;
            };
            let (mut from_client, mut to_client) = client.into_split();
            let (mut from_server, mut to_server) = server.into_split();
            let scripted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let seen = scripted.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                while let Ok(n) = from_client.read(&mut buffer).await {
                    if n == 0 {
                        return;
                    }
                    if buffer[..n]
                        .windows(4)
                        .any(|w| w.eq_ignore_ascii_case(b"EVAL"))
                    {
                        seen.store(true, Ordering::SeqCst);
                    }
                    if to_server.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                while let Ok(n) = from_server.read(&mut buffer).await {
                    if n == 0 {
                        return;
                    }
                    if scripted.swap(false, Ordering::SeqCst) {
                        tokio::time::sleep(delay).await;
                    }
                    if to_client.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig::new(url, prefix)
        .with_sync_interval(Duration::from_millis(50))
        .with_timeout(Duration::from_millis(150))
        .with_fallback_after(Duration::from_secs(30))
}

#[tokio::test]
async fn a_sync_retried_after_its_timeout_does_not_restamp_the_cut() {
    let Some(redis) =
        start_or_skip("a_sync_retried_after_its_timeout_does_not_restamp_the_cut").await
    else {
        return;
    };
    let prefix = unique_prefix("slow-link");
    // A's replies come 400 ms late: every sync of A times out after its script ran.
    let proxy = delaying_proxy(redis.addr(), Duration::from_millis(400)).await;
    let slow = RedisStore::spawn(config(&format!("redis://{proxy}/0"), &prefix)).unwrap();
    let fast = RedisStore::spawn(config(&redis.url(), &prefix)).unwrap();
    // The slow process sends at 100/s and is throttled once: it cuts, and publishes the cut.
    let start = Instant::now();
    for i in 0..60 {
        let _ = slow.admit(start + Duration::from_millis(10 * i), Ticket::New, None);
    }
    slow.record(
        start + Duration::from_millis(600),
        Signal::Throttled { hint: None },
        None,
    );
    let key = format!("{{{prefix}}}:gate");
    let cut_at = || async {
        let reply = redis.command(&["HGET", &key, "cut"]).await.ok()?;
        reply.text()?.parse::<u64>().ok()
    };
    // The cut reaches Redis (the script runs; only the reply is late)...
    let mut first = None;
    for _ in 0..40 {
        if let Some(at) = cut_at().await {
            first = Some(at);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = first.expect("the slow process's cut reached Redis");
    // The fast process adopts it: paced at its share of the cut rate.
    assert!(
        eventually(Duration::from_secs(1), || fast
            .local()
            .paced_rate(Instant::now())
            .is_some())
        .await
    );
    let at_cut = fast.local().paced_rate(Instant::now()).unwrap_or_default();
    // For 4 s the slow process keeps retrying its sync (every reply is late) while the fast
    // one keeps sending (40/s, what the pace lets through, so its growth is not capped by
    // idleness). The shared cut stays the one cut, and the fast process's curve grows from
    // it instead of restarting at every sync.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        if let tower_reliability::rate_limit::Admission::Wait(place) =
            fast.admit(Instant::now(), Ticket::New, None)
        {
            fast.leave(Instant::now(), place);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let later = cut_at().await.expect("the cut is still shared");
    assert_eq!(later, first, "a retried sync stamped the cut again");
    let grown = fast.local().paced_rate(Instant::now()).unwrap_or_default();
    assert!(
        grown > at_cut * 1.2,
        "stuck: {at_cut:.1}/s at the cut, {grown:.1}/s 4 s later"
    );
}
