//! ioq inside tokio: the driver on current_thread and multi_thread runtimes, tokio's
//! AsyncRead/AsyncWrite on ioq streams (tokio-util's LinesCodec, an HTTP/1.1 server and a
//! hand-written client), ioq tasks and the executor's rules under the driver.

use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ioq::rt::{self, Either};
use ioq::tokio::Driver;
use ioq::{Error, Loop, LoopRef, TcpListener, TcpStream};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::runtime::{Builder, Runtime};
use tokio::task::LocalSet;
use tokio_util::codec::{Framed, LinesCodec};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

fn multi_thread() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn flavours() -> [(&'static str, Runtime); 2] {
    [
        ("current_thread", current_thread()),
        ("multi_thread", multi_thread()),
    ]
}

async fn pair(lp: &LoopRef) -> (TcpListener, TcpStream, TcpStream) {
    let l = lp.tcp_listen(local()).unwrap();
    let acc = l.accept();
    let c = lp.connect(l.local_addr().unwrap()).await.unwrap();
    let s = acc.await.unwrap();
    (l, c, s)
}

async fn echo(conn: TcpStream) -> ioq::Result<usize> {
    let mut total = 0;
    let mut buf = Vec::with_capacity(4096);
    loop {
        let (r, b) = conn.recv(buf).await;
        let n = r?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
        let (r, b) = conn.send(b).await;
        r?;
        buf = b;
    }
}

/// Waits for the completions of cancelled operations.
async fn settle(lp: &LoopRef) {
    for _ in 0..3 {
        lp.sleep(Duration::from_millis(1)).await.unwrap();
    }
}

#[test]
fn ioq_futures_in_tokio_on_both_flavours() {
    for (name, rt) in flavours() {
        let n = rt.block_on(ioq::tokio::run(async {
            let lp = rt::current();
            let l = lp.tcp_listen(local()).unwrap();
            let addr = l.local_addr().unwrap();
            let server = rt::spawn(async move {
                let mut hs = Vec::new();
                for _ in 0..20 {
                    hs.push(rt::spawn(echo(l.accept().await.unwrap())));
                }
                let mut total = 0;
                for h in hs {
                    total += h.await.unwrap().unwrap();
                }
                total
            });
            let mut clients = Vec::new();
            for i in 0..20usize {
                clients.push(rt::spawn(async move {
                    let c = rt::current().connect(addr).await.unwrap();
                    let msg: Vec<u8> = (0..500 + i).map(|k| (k + i) as u8).collect();
                    let (r, msg) = c.send(msg).await;
                    r.unwrap();
                    // tokio's timer beside ioq's operations
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let mut got = Vec::new();
                    while got.len() < msg.len() {
                        let (r, b) = c.recv(Vec::with_capacity(4096)).await;
                        assert!(r.unwrap() > 0);
                        got.extend_from_slice(&b);
                    }
                    assert_eq!(got, msg);
                    c.close().await.unwrap();
                }));
            }
            for c in clients {
                c.await.unwrap();
            }
            // tokio's timeout around an ioq future, and ioq's around a tokio one.
            let r =
                tokio::time::timeout(Duration::from_millis(5), lp.sleep(Duration::from_secs(5)))
                    .await;
            assert!(r.is_err());
            let r = rt::timeout(
                Duration::from_millis(5),
                tokio::time::sleep(Duration::from_secs(5)),
            )
            .await;
            assert!(r.is_err());
            let total = server.await.unwrap();
            settle(&lp).await;
            assert_eq!(lp.in_flight(), 0, "{}: nothing left in flight", name);
            total
        }));
        assert_eq!(n, (0..20).map(|i| 500 + i).sum::<usize>(), "{}", name);
    }
}

/// `ioq::tokio::run` runs its future inside a `LocalSet` of its own (its driver is a task
/// there): `tokio::task::spawn_local` works in it without a `LocalSet` of the caller's, and
/// a task still running when the future returns is dropped with the `Run`.
#[test]
fn spawn_local_inside_run_needs_no_local_set() {
    struct Dropped(std::sync::mpsc::Sender<()>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    for (name, rt) in flavours() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let got = rt.block_on(ioq::tokio::run(async move {
            let lp = rt::current();
            let (_l, c, s) = pair(&lp).await;
            let server = tokio::task::spawn_local(echo(s));
            let d = Dropped(tx);
            tokio::task::spawn_local(async move {
                let _d = d;
                std::future::pending::<()>().await
            });
            let (r, _) = c.send(b"hi".to_vec()).await;
            r.unwrap();
            let (r, b) = c.recv(Vec::with_capacity(8)).await;
            assert_eq!(r, Ok(2));
            c.shutdown().await.unwrap();
            assert_eq!(server.await.unwrap().unwrap(), 2);
            b
        }));
        assert_eq!(got, b"hi", "{}", name);
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("{}: the task left running was not dropped", name));
    }
}

#[test]
fn tokio_local_tasks_await_ioq_futures() {
    for (name, rt) in flavours() {
        let set = LocalSet::new();
        set.block_on(
            &rt,
            ioq::tokio::run(async move {
                let lp = rt::current();
                let l = lp.tcp_listen(local()).unwrap();
                let addr = l.local_addr().unwrap();
                let server = tokio::task::spawn_local(async move {
                    echo(l.accept().await.unwrap()).await.unwrap()
                });
                let client = tokio::task::spawn_local(async move {
                    // rt::current() also works in tokio tasks of the driver's thread.
                    let c = rt::current().connect(addr).await.unwrap();
                    let (r, _) = c.send(b"through a tokio task".to_vec()).await;
                    r.unwrap();
                    let (r, b) = c.recv(Vec::with_capacity(64)).await;
                    assert_eq!(r, Ok(20));
                    c.shutdown().await.unwrap();
                    b
                });
                assert_eq!(client.await.unwrap(), b"through a tokio task", "{}", name);
                assert_eq!(server.await.unwrap(), 20);
            }),
        );
    }
}

#[test]
fn a_driver_task_drives_a_loop_of_your_own() {
    let rt = current_thread();
    let set = LocalSet::new();
    let lp = Loop::new().unwrap();
    let r = lp.handle();
    set.block_on(&rt, async {
        let driver = tokio::task::spawn_local(Driver::new(&r).unwrap());
        let (_l, c, s) = pair(&r).await;
        let (res, _) = c.send(b"ping".to_vec()).await;
        res.unwrap();
        let (res, b) = s.recv(Vec::with_capacity(8)).await;
        assert_eq!((res, b), (Ok(4), b"ping".to_vec()));
        // The driver also runs the loop's own tasks.
        assert_eq!(r.spawn(async { 5 }).await.unwrap(), 5);
        // Dropping the loop ends the driver task.
        drop(lp);
        tokio::time::timeout(Duration::from_secs(5), driver)
            .await
            .expect("the driver ends with its loop")
            .unwrap();
    });
}

#[test]
fn worker_tasks_use_ioq_through_remote_spawn() {
    let rt = multi_thread();
    rt.block_on(ioq::tokio::run(async {
        let lp = rt::current();
        let l = lp.tcp_listen(local()).unwrap();
        let addr = l.local_addr().unwrap();
        let loop_thread = std::thread::current().id();
        let server = rt::spawn(async move {
            for _ in 0..8 {
                rt::spawn(echo(l.accept().await.unwrap()));
            }
        });
        let remote = lp.remote();
        let mut workers = Vec::new();
        for i in 0..4u8 {
            let remote = remote.clone();
            // Send futures on tokio's worker threads...
            workers.push(tokio::spawn(async move {
                // ...that talk to the ioq server with tokio's own socket,
                let mut t = tokio::net::TcpStream::connect(addr).await.unwrap();
                t.write_all(&[i; 100]).await.unwrap();
                let mut back = [0u8; 100];
                t.read_exact(&mut back).await.unwrap();
                assert_eq!(back, [i; 100]);
                // ...and hand ioq work to the loop's thread.
                let h = remote.spawn(move || async move {
                    assert_eq!(std::thread::current().id(), loop_thread);
                    let c = rt::current().connect(addr).await.unwrap();
                    let (r, _) = c.send(vec![i; 10]).await;
                    r.unwrap();
                    let (r, b) = c.recv(Vec::with_capacity(10)).await;
                    r.unwrap();
                    b
                });
                assert_ne!(std::thread::current().id(), loop_thread);
                h.await.unwrap()
            }));
        }
        for (i, w) in workers.into_iter().enumerate() {
            assert_eq!(w.await.unwrap(), vec![i as u8; 10]);
        }
        server.await.unwrap();
    }));
}

#[test]
fn lines_codec_over_an_ioq_stream() {
    for (name, rt) in flavours() {
        rt.block_on(ioq::tokio::run(async move {
            let lp = rt::current();
            let (_l, c, s) = pair(&lp).await;
            let server = rt::spawn(async move {
                let mut f = Framed::new(s, LinesCodec::new());
                let mut n = 0;
                while let Some(line) = f.next().await {
                    let line = line.unwrap();
                    f.send(line.to_uppercase()).await.unwrap();
                    n += 1;
                }
                n
            });
            let mut f = Framed::new(c, LinesCodec::new());
            for i in 0..500 {
                f.feed(format!("line {} of {}", i, name)).await.unwrap();
            }
            SinkExt::<String>::flush(&mut f).await.unwrap();
            for i in 0..500 {
                let got = f.next().await.unwrap().unwrap();
                assert_eq!(got, format!("LINE {} OF {}", i, name.to_uppercase()));
            }
            // A long line split across many reads, then the end of the stream.
            let long = "x".repeat(100_000);
            f.send(long.clone()).await.unwrap();
            assert_eq!(f.next().await.unwrap().unwrap(), long.to_uppercase());
            f.get_mut().shutdown().await.unwrap();
            assert!(f.next().await.is_none(), "the server closed after our end");
            assert_eq!(server.await.unwrap(), 501);
        }));
    }
}

/// A small HTTP/1.1 server on an ioq stream with tokio's traits: keep-alive,
/// Content-Length bodies, `Connection: close`.
async fn serve_http(mut conn: TcpStream) -> std::io::Result<usize> {
    let mut served = 0;
    loop {
        let mut request_line = String::new();
        if conn.read_line(&mut request_line).await? == 0 {
            return Ok(served);
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let mut length = 0;
        let mut close = false;
        loop {
            let mut h = String::new();
            conn.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            match k.to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap(),
                "connection" => close = v.trim().eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut body = vec![0u8; length];
        conn.read_exact(&mut body).await?;
        let reply = format!("{} {} with {} bytes", method, path, body.len());
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
            reply.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        conn.write_all(head.as_bytes()).await?;
        conn.write_all(reply.as_bytes()).await?;
        conn.flush().await?;
        served += 1;
        if close {
            conn.shutdown().await?;
            return Ok(served);
        }
    }
}

/// The client, by hand: one request, then the status, headers and body of its response.
async fn http_request(
    conn: &mut TcpStream,
    method: &str,
    path: &str,
    body: &[u8],
    close: bool,
) -> (u32, Vec<(String, String)>, Vec<u8>) {
    let mut req = format!(
        "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        method,
        path,
        body.len()
    );
    if close {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    conn.flush().await.unwrap();
    let mut status = String::new();
    conn.read_line(&mut status).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 "), "status line {:?}", status);
    let code = status[9..12].parse().unwrap();
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut h = String::new();
        conn.read_line(&mut h).await.unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        if k.eq_ignore_ascii_case("content-length") {
            length = v.trim().parse().unwrap();
        }
        headers.push((k.to_string(), v.trim().to_string()));
    }
    let mut out = vec![0u8; length];
    conn.read_exact(&mut out).await.unwrap();
    (code, headers, out)
}

#[test]
fn http_request_and_response_over_ioq_streams() {
    for (name, rt) in flavours() {
        rt.block_on(ioq::tokio::run(async move {
            let lp = rt::current();
            let l = lp.tcp_listen(local()).unwrap();
            let addr = l.local_addr().unwrap();
            let server = rt::spawn(async move { serve_http(l.accept().await.unwrap()).await });
            let mut c = lp.connect(addr).await.unwrap();
            let (code, headers, body) = http_request(&mut c, "GET", "/hello", b"", false).await;
            assert_eq!(code, 200, "{}", name);
            assert!(headers.contains(&("Content-Type".into(), "text/plain".into())));
            assert_eq!(body, b"GET /hello with 0 bytes");
            // Keep-alive: a POST with a body larger than the adapter's buffers.
            let big = vec![b'z'; 200_000];
            let (code, _, body) = http_request(&mut c, "POST", "/upload", &big, false).await;
            assert_eq!(code, 200);
            assert_eq!(body, b"POST /upload with 200000 bytes");
            let (code, headers, body) = http_request(&mut c, "GET", "/bye", b"", true).await;
            assert_eq!(code, 200);
            assert!(headers.contains(&("Connection".into(), "close".into())));
            assert_eq!(body, b"GET /bye with 0 bytes");
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty(), "the server closed after the last response");
            assert_eq!(server.await.unwrap().unwrap(), 3);
        }));
    }
}

#[test]
fn tokio_io_utilities_over_ioq_streams() {
    let rt = current_thread();
    rt.block_on(ioq::tokio::run(async {
        let lp = rt::current();
        let (_l, c, s) = pair(&lp).await;
        // tokio::io::copy between the halves of one stream: an echo server.
        let server = rt::spawn(async move {
            let (mut r, mut w) = tokio::io::split(s);
            let n = tokio::io::copy(&mut r, &mut w).await.unwrap();
            w.shutdown().await.unwrap();
            n
        });
        let (mut r, mut w) = tokio::io::split(c);
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        let d2 = data.clone();
        let writer = rt::spawn(async move {
            w.write_all(&d2).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut back = Vec::new();
        r.read_to_end(&mut back).await.unwrap();
        writer.await.unwrap();
        assert_eq!(server.await.unwrap(), data.len() as u64);
        assert!(back == data, "every byte came back");

        // A reset peer is an error of tokio's kinds.
        let (_l, c, mut s) = pair(&lp).await;
        c.set_option(ioq::sys::IOQ_OPT_LINGER, 0).unwrap();
        drop(c);
        let mut b = [0u8; 4];
        let e = s.read(&mut b).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    }));
}

#[test]
fn executor_rules_hold_under_the_driver() {
    let rt = current_thread();
    rt.block_on(ioq::tokio::run(async {
        let lp = rt::current();
        // A panicking ioq task gives a JoinError; the loop and tokio go on.
        let h = rt::spawn(async {
            rt::sleep(Duration::from_millis(1)).await.unwrap();
            panic!("task failed under tokio");
        });
        let e = h.await.unwrap_err();
        assert!(e.is_panic());
        assert!(e.to_string().contains("task failed under tokio"));
        tokio::time::sleep(Duration::from_millis(1)).await;
        // abort, with an operation in flight
        let (_l, _c, s) = pair(&lp).await;
        let before = lp.in_flight();
        let h = rt::spawn(async move { s.recv(Vec::with_capacity(8)).await.0 });
        rt::sleep(Duration::from_millis(2)).await.unwrap();
        h.abort();
        assert!(h.await.unwrap_err().is_cancelled());
        settle(&lp).await;
        assert_eq!(lp.in_flight(), before, "the aborted receive is gone");
        // select between an ioq timer and a tokio timer
        let r = rt::select(
            tokio::time::sleep(Duration::from_millis(1)),
            lp.sleep(Duration::from_secs(5)),
        )
        .await;
        assert!(matches!(r, Either::Left(())));
        // A tokio task (spawn_local needs a LocalSet; plain spawn needs Send): a panic in
        // a tokio task is tokio's JoinError, and the ioq loop is unaffected.
        let t = tokio::spawn(async { panic!("tokio task") });
        assert!(t.await.unwrap_err().is_panic());
        lp.sleep(Duration::from_millis(1)).await.unwrap();
    }));
}

#[test]
fn nested_block_on_inside_the_driver_panics() {
    let rt = current_thread();
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(ioq::tokio::run(async { rt::block_on(async { 1 }) }))
    }));
    let p = r.unwrap_err();
    let msg = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        msg.contains("block_on called inside a running block_on"),
        "message: {}",
        msg
    );
    // The runtime and the thread stay usable.
    assert_eq!(rt.block_on(ioq::tokio::run(async { 2 })), 2);
    assert!(rt::try_current().is_none());
}

#[test]
fn driver_errors() {
    // No tokio runtime on this thread.
    let lp = Loop::new().unwrap();
    let e = Driver::new(&lp).unwrap_err();
    assert!(e.to_string().contains("no tokio runtime"), "{}", e);

    let rt = current_thread();
    let _g = rt.enter();
    // One driver per loop; after it is dropped, another may drive the loop.
    let d = Driver::new(&lp).unwrap();
    let e = Driver::new(&lp).unwrap_err();
    assert!(e.to_string().contains("EBUSY"), "{}", e);
    drop(d);
    let d = Driver::new(&lp).unwrap();
    drop(d);

    // io_uring: the loop's descriptor must be asked for before its first operation.
    let lp = Loop::new().unwrap();
    if lp.backend() == "io_uring" {
        let l = lp.tcp_listen(local()).unwrap();
        let pending = l.accept();
        let e = Driver::new(&lp).unwrap_err();
        assert!(e.to_string().contains("EBUSY"), "{}", e);
        assert!(
            e.to_string().contains("before the loop's first operation"),
            "{}",
            e
        );
        drop(pending);
    }
    // A dropped loop cannot be driven.
    let r = lp.handle();
    drop(lp);
    let e = Driver::new(&r).unwrap_err();
    assert!(e.to_string().contains(Error::BADHANDLE.name()), "{}", e);
}

/// A loop whose host flushes (IOQ_LOOP_HOST_FLUSH; `ioq::tokio::run` makes one): what tokio
/// tasks submit outside the driver waits for the driver's flush, which must come even when
/// nothing else would wake it (no operation in flight, the loop's descriptor quiet).
#[test]
fn host_flush_submissions_from_tasks_woken_by_tokio() {
    for (name, rt) in flavours() {
        let set = LocalSet::new();
        set.block_on(&rt, async move {
            let lp = Loop::with_host_flush(ioq::Backend::Auto).unwrap();
            let r = lp.handle();
            let driver = tokio::task::spawn_local(Driver::new(&r).unwrap());
            let (_l, c, s) = pair(&r).await;
            let server = tokio::task::spawn_local(echo(s));
            for round in 0..20u8 {
                // Woken by tokio's timer, not by ioq: the loop is idle when these submit.
                let c2 = &c;
                tokio::time::sleep(Duration::from_millis(if round % 5 == 0 { 5 } else { 0 })).await;
                let (res, _) =
                    tokio::time::timeout(Duration::from_secs(5), c2.send(vec![round; 100]))
                        .await
                        .unwrap_or_else(|_| {
                            panic!("{}: round {}: the send never ended", name, round)
                        });
                res.unwrap();
                let mut got = Vec::new();
                while got.len() < 100 {
                    let (res, b) = tokio::time::timeout(
                        Duration::from_secs(5),
                        c2.recv(Vec::with_capacity(100 - got.len())),
                    )
                    .await
                    .unwrap_or_else(|_| panic!("{}: round {}: the echo never came", name, round));
                    res.unwrap();
                    got.extend_from_slice(&b);
                }
                assert_eq!(got, vec![round; 100], "{}", name);
            }
            // A receive dropped while still queued (cancelled before any flush), then
            // the stream goes on.
            // (timeout polls the receive once, then gives up: nothing can have arrived)
            assert!(
                tokio::time::timeout(Duration::ZERO, c.recv(Vec::with_capacity(8)))
                    .await
                    .is_err()
            );
            let (res, _) = c.send(b"after".to_vec()).await;
            res.unwrap();
            let (res, b) =
                tokio::time::timeout(Duration::from_secs(5), c.recv(Vec::with_capacity(8)))
                    .await
                    .expect("echo after a cancelled receive");
            assert_eq!((res, b), (Ok(5), b"after".to_vec()), "{}", name);
            // Closing with a receive queued, from a task the driver did not wake.
            tokio::task::spawn_local(async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                c.close().await.unwrap();
            })
            .await
            .unwrap();
            let total = tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .expect("the server sees the end of the stream")
                .unwrap()
                .unwrap();
            assert_eq!(total, 20 * 100 + 5, "{}", name);
            drop(lp);
            tokio::time::timeout(Duration::from_secs(5), driver)
                .await
                .expect("the driver ends with its loop")
                .unwrap();
        });
    }
}

/// Sends that complete inside their submit call (epoll and kqueue finish them there; on a
/// host-flushed loop their records wake nobody) from tasks tokio woke, to a peer outside
/// the loop: nothing else ever makes the loop's descriptor readable, so each completes
/// only because the driver polls after submissions (its flush).
#[test]
fn host_flush_sends_that_complete_at_once_reach_their_futures() {
    for (name, rt) in flavours() {
        let set = LocalSet::new();
        set.block_on(&rt, async move {
            let lp = Loop::with_host_flush(ioq::Backend::Auto).unwrap();
            let r = lp.handle();
            let driver = tokio::task::spawn_local(Driver::new(&r).unwrap());
            let peer = std::net::TcpListener::bind(local()).unwrap();
            let mut c = r.connect(peer.local_addr().unwrap()).await.unwrap();
            let (mut s, _) = peer.accept().unwrap();
            let reader = std::thread::spawn(move || {
                let mut all = Vec::new();
                std::io::Read::read_to_end(&mut s, &mut all).unwrap();
                all
            });
            let mut want = Vec::new();
            for i in 0..200u32 {
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let msg = i.to_le_bytes().to_vec();
                want.extend_from_slice(&msg);
                let sent = tokio::task::spawn_local(async move {
                    tokio::task::yield_now().await;
                    c.send(msg).await.0.map(|n| (n, c))
                });
                let (n, back) = tokio::time::timeout(Duration::from_secs(5), sent)
                    .await
                    .unwrap_or_else(|_| panic!("{}: send {} never completed", name, i))
                    .unwrap()
                    .unwrap();
                assert_eq!(n, 4, "{}", name);
                c = back;
            }
            c.close().await.unwrap();
            assert_eq!(reader.join().unwrap(), want, "{}", name);
            drop(lp);
            tokio::time::timeout(Duration::from_secs(5), driver)
                .await
                .expect("the driver ends with its loop")
                .unwrap();
        });
    }
}

/// The same through `ioq::tokio::run`, many connections and tokio local tasks at once:
/// every operation completes once, and a driver dropped with work queued leaves it to the
/// loop's next poll.
#[test]
fn host_flush_many_connections_through_run() {
    let rt = current_thread();
    let set = LocalSet::new();
    set.block_on(
        &rt,
        ioq::tokio::run(async {
            let lp = rt::current();
            let l = lp.tcp_listen(local()).unwrap();
            let addr = l.local_addr().unwrap();
            tokio::task::spawn_local(async move {
                loop {
                    match l.accept().await {
                        Ok(c) => drop(tokio::task::spawn_local(echo(c))),
                        Err(_) => return,
                    }
                }
            });
            let mut clients = Vec::new();
            for i in 0..16u8 {
                clients.push(tokio::task::spawn_local(async move {
                    let c = rt::current().connect(addr).await.unwrap();
                    for k in 0..50u8 {
                        let msg = vec![i ^ k; 64];
                        let (res, _) = c.send(msg.clone()).await;
                        res.unwrap();
                        let mut got = Vec::new();
                        while got.len() < 64 {
                            let (res, b) = c.recv(Vec::with_capacity(64 - got.len())).await;
                            assert!(res.unwrap() > 0);
                            got.extend_from_slice(&b);
                        }
                        assert_eq!(got, msg);
                    }
                    c.close().await.unwrap();
                }));
            }
            for c in clients {
                tokio::time::timeout(Duration::from_secs(20), c)
                    .await
                    .expect("16 clients x 50 round trips")
                    .unwrap();
            }
        }),
    );
}

/// A host-flushed loop outside tokio: its own runtime polls (and so flushes) as usual,
/// also after a driver went away with submissions queued.
#[test]
fn host_flush_loop_in_ioq_runtime_and_after_a_driver() {
    let lp = Loop::with_host_flush(ioq::Backend::Auto).unwrap();
    let r = lp.handle();
    let (_l, c, s) = lp.block_on(async { pair(&r).await });
    {
        let rt = current_thread();
        let _g = rt.enter();
        let driver = Driver::new(&r).unwrap();
        // Queued under the driver, which is dropped before it ever runs.
        let send = c.send(b"queued".to_vec());
        drop(driver);
        let (res, _) = lp.block_on(send);
        res.unwrap();
    }
    let (res, b) = lp.block_on(s.recv(Vec::with_capacity(16)));
    assert_eq!((res, b), (Ok(6), b"queued".to_vec()));
}
