//! Limits a hostile client meets at the web server (`server::accept`): headers must arrive in
//! time, and only so many connections are served at once.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Commit, TestHub};

/// How a trickling connection ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The hub closed it after this long.
    Closed(Duration),
    /// Still open when the client gave up.
    Open,
}

/// Opens a connection and sends a request's headers one line at a time, every 300 ms, never
/// finishing them (slowloris), until the hub closes it or `give_up` passes.
async fn trickle(addr: std::net::SocketAddr, give_up: Duration) -> Ended {
    let started = Instant::now();
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return Ended::Closed(Duration::ZERO);
    };
    if s.write_all(b"POST /alice/song/push HTTP/1.1\r\nHost: hub\r\n")
        .await
        .is_err()
    {
        return Ended::Closed(started.elapsed());
    }
    let mut buf = [0u8; 512];
    loop {
        if started.elapsed() > give_up {
            return Ended::Open;
        }
        tokio::select! {
            read = s.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Ended::Closed(started.elapsed()),
                // Whatever the hub says, the connection must end next.
                Ok(_) => {}
            },
            () = tokio::time::sleep(Duration::from_millis(300)) => {
                if s.write_all(b"X-Slow: a\r\n").await.is_err() {
                    return Ended::Closed(started.elapsed());
                }
            }
        }
    }
}

#[tokio::test]
async fn trickled_headers_are_cut_off_while_a_real_client_still_pushes() {
    let timeout = Duration::from_secs(2);
    let hub = TestHub::spawn_with(|c| {
        c.http.header_timeout = timeout;
    })
    .await;
    let token = hub.user("alice").await;
    let addr = hub.server.local_addr();

    let slow: Vec<_> = (0..500)
        .map(|_| tokio::spawn(trickle(addr, Duration::from_secs(20))))
        .collect();
    // With 500 slow connections open, a push still goes through.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let riff = b"a riff pushed while 500 connections trickle headers".as_slice();
    let c = Commit::new(
        &[],
        &[("riff.txt", riff)],
        "riff",
        "2026-12-07T18:00:00+00:00",
    );
    let (s, b) = hub
        .push("alice/song", &token, &[riff], &[c], "main", false)
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));

    let mut closed = Vec::new();
    for task in slow {
        match task.await.unwrap() {
            Ended::Closed(after) => closed.push(after),
            Ended::Open => panic!("a connection trickling headers was still open after 20 s"),
        }
    }
    assert_eq!(closed.len(), 500);
    // Cut off by the header timeout, not refused on arrival.
    let earliest = closed.iter().min().unwrap();
    assert!(
        *earliest >= timeout - Duration::from_millis(200),
        "closed after {earliest:?}, before the {timeout:?} header timeout"
    );
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once_and_counted() {
    let hub = TestHub::spawn_with(|c| {
        c.http.max_connections = 8;
    })
    .await;
    let addr = hub.server.local_addr();
    // Eight idle connections take every slot (each sent a partial request).
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut ninth = TcpStream::connect(addr).await.unwrap();
    let _ = ninth
        .write_all(b"GET /health HTTP/1.1\r\nHost: hub\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), ninth.read(&mut buf))
        .await
        .expect("the hub closes a connection past the cap at once");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "no answer past the cap: {read:?}"
    );
    assert_eq!(hub.server.hub().metrics().connections_refused.get(), 1);

    // Slots come back as connections end.
    drop(held);
    let mut answered = false;
    for _ in 0..50 {
        let (s, _) = hub.get("/health", None).await;
        if s == StatusCode::OK {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "the hub serves again once connections close");
    let (_, metrics) = hub.get("/metrics", None).await;
    let text = String::from_utf8_lossy(&metrics);
    assert!(
        text.contains("musehub_http_connections_refused_total"),
        "{text}"
    );
}
