//! Every operation of the safe API, on loopback and in a temporary directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ioq::{rt, Error, Loop, OpenOptions, TcpListener, TcpStream};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A directory removed again when the test ends, however it ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "ioq-rust-{}-{}-{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn pair(lp: &ioq::LoopRef) -> (TcpListener, TcpStream, TcpStream) {
    let l = lp.tcp_listen(local()).unwrap();
    let addr = l.local_addr().unwrap();
    let acc = l.accept();
    let c = lp.connect(addr).await.unwrap();
    let s = acc.await.unwrap();
    (l, c, s)
}

async fn recv_exact(s: &TcpStream, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < n {
        let (r, b) = s.recv(Vec::with_capacity(n - out.len())).await;
        let got = r.unwrap();
        assert!(got > 0, "early end of stream");
        out.extend_from_slice(&b);
    }
    out
}

#[test]
fn tcp_accept_connect_send_recv_shutdown_close() {
    rt::block_on(async {
        let lp = rt::current();
        let (l, c, s) = pair(&lp).await;
        assert_eq!(c.peer_addr().unwrap(), l.local_addr().unwrap());
        assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
        c.set_nodelay(true).unwrap();

        let (r, buf) = c.send(b"hello".to_vec()).await;
        assert_eq!(r, Ok(5));
        assert_eq!(buf, b"hello", "the buffer comes back unchanged");
        let got = recv_exact(&s, 5).await;
        assert_eq!(got, b"hello");

        // Several sends in flight go out in order.
        let a = s.send(vec![b'a'; 1000]);
        let b = s.send(vec![b'b'; 1000]);
        assert_eq!(a.await.0, Ok(1000));
        assert_eq!(b.await.0, Ok(1000));
        let got = recv_exact(&c, 2000).await;
        assert!(got[..1000].iter().all(|&x| x == b'a') && got[1000..].iter().all(|&x| x == b'b'));

        s.shutdown().await.unwrap();
        let (r, _) = c.recv(vec![0u8; 16]).await;
        assert_eq!(r, Ok(0), "end of stream after shutdown");
        c.close().await.unwrap();
        s.close().await.unwrap();
        l.close().await.unwrap();
    });
}

#[test]
fn boxed_slices_and_arrays_are_buffers() {
    rt::block_on(async {
        let lp = rt::current();
        let (_l, c, s) = pair(&lp).await;
        let (r, _) = c.send(*b"0123456789").await;
        assert_eq!(r, Ok(10));
        let (r, b) = s.recv(vec![0u8; 10].into_boxed_slice()).await;
        let n = r.unwrap();
        assert_eq!(&b[..n], &b"0123456789"[..n]);
        let (r, _) = c.send("static text").await;
        assert_eq!(r, Ok(11));
    });
}

#[test]
fn sendv_gathers_in_order() {
    rt::block_on(async {
        let lp = rt::current();
        let (_l, c, s) = pair(&lp).await;
        let parts = vec![b"ab".to_vec(), Vec::new(), b"cde".to_vec()];
        let (r, parts) = c.sendv(parts).await;
        assert_eq!(r, Ok(5));
        assert_eq!(parts.len(), 3);
        assert_eq!(recv_exact(&s, 5).await, b"abcde");
    });
}

#[test]
fn udp_send_to_and_recv_from() {
    rt::block_on(async {
        let lp = rt::current();
        let a = lp.udp_bind(local()).unwrap();
        let b = lp.udp_bind(local()).unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let rx = b.recv_from(Vec::with_capacity(64));
        let (r, _) = a.send_to(b"datagram".to_vec(), ba).await;
        assert_eq!(r, Ok(8));
        let (r, buf) = rx.await;
        assert_eq!(r, Ok((8, aa)));
        assert_eq!(buf, b"datagram");
        // A longer datagram is truncated to the buffer.
        let (r, _) = a.send_to(vec![7u8; 100], ba).await;
        assert_eq!(r, Ok(100));
        let (r, buf) = b.recv(Vec::with_capacity(10)).await;
        assert_eq!(r, Ok(10));
        assert_eq!(buf, vec![7u8; 10]);
    });
}

#[test]
fn local_sockets_in_a_temp_dir() {
    let dir = TempDir::new("local");
    let path = dir.path("sock");
    rt::block_on(async {
        let lp = rt::current();
        let l = lp.local_listen(&path, true).unwrap();
        let acc = l.accept();
        let c = lp.local_connect(&path).await.unwrap();
        let s = acc.await.unwrap();
        let (r, _) = c.send(b"over unix".to_vec()).await;
        assert_eq!(r, Ok(9));
        let (r, b) = s.recv(Vec::with_capacity(64)).await;
        assert_eq!(r, Ok(9));
        assert_eq!(b, b"over unix");
        let missing = dir.path("nobody-here");
        assert_eq!(lp.local_connect(&missing).await.err(), Some(Error::NOENT));
    });
}

#[test]
fn files_open_write_fsync_read() {
    let dir = TempDir::new("file");
    let path = dir.path("data.bin");
    rt::block_on(async {
        let lp = rt::current();
        let f = lp
            .open(
                &path,
                &OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true),
            )
            .await
            .unwrap();
        let (r, _) = f.write_at(b"0123456789".to_vec(), 0).await;
        assert_eq!(r, Ok(10));
        let (r, _) = f.write_at(b"AB".to_vec(), 4).await;
        assert_eq!(r, Ok(2));
        f.sync_all().await.unwrap();
        let (r, b) = f.read_at(Vec::with_capacity(64), 0).await;
        assert_eq!(r, Ok(10));
        assert_eq!(b, b"0123AB6789");
        let (r, b) = f.read_at(Vec::with_capacity(4), 8).await;
        assert_eq!((r, b.as_slice()), (Ok(2), &b"89"[..]));
        let (r, _) = f.read_at(Vec::with_capacity(4), 10).await;
        assert_eq!(r, Ok(0), "end of file");
        f.close().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"0123AB6789");

        let e = lp
            .open(&dir.path("missing"), &OpenOptions::new().read(true))
            .await
            .err();
        assert_eq!(e, Some(Error::NOENT));
        let excl = OpenOptions::new().write(true).create_new(true);
        assert_eq!(lp.open(&path, &excl).await.err(), Some(Error::EXIST));
    });
}

#[test]
fn timeouts_never_fire_early() {
    rt::block_on(async {
        let lp = rt::current();
        let t0 = lp.now();
        lp.sleep(Duration::from_millis(20)).await.unwrap();
        assert!(lp.now() - t0 >= Duration::from_millis(20));
        // Same deadline: submission order.
        let a = lp.spawn({
            let lp = lp.clone();
            async move { lp.sleep(Duration::from_millis(5)).await.map(|_| lp.now()) }
        });
        let b = lp.spawn({
            let lp = lp.clone();
            async move { lp.sleep(Duration::from_millis(5)).await.map(|_| lp.now()) }
        });
        let (ta, tb) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
        assert!(ta <= tb);
    });
}

#[test]
fn absolute_timeouts_never_fire_early() {
    rt::block_on(async {
        let lp = rt::current();
        let base = lp.now();
        let late = lp.spawn({
            let lp = lp.clone();
            async move { lp.sleep_until(base + Duration::from_millis(20)).await.map(|_| lp.now()) }
        });
        let early = lp.spawn({
            let lp = lp.clone();
            async move { rt::sleep_until(base + Duration::from_millis(5)).await.map(|_| lp.now()) }
        });
        let (tl, te) = (late.await.unwrap().unwrap(), early.await.unwrap().unwrap());
        assert!(te >= base + Duration::from_millis(5));
        assert!(tl >= base + Duration::from_millis(20));
        // A deadline already past (the clock's zero included) completes at once.
        lp.sleep_until(Duration::ZERO).await.unwrap();
        lp.sleep_until(lp.now()).await.unwrap();
        // As a bound on another future: the deadline wins over one that never ends...
        let never = std::future::pending::<()>();
        let d = lp.now() + Duration::from_millis(10);
        assert!(lp.timeout_at(d, never).await.is_err());
        assert!(lp.now() >= d);
        // ...and a far one leaves a quick future alone (its timer is cancelled).
        let far = lp.now() + Duration::from_secs(3600);
        assert_eq!(lp.timeout_at(far, async { 7 }).await, Ok(7));
    });
}

#[test]
fn resolve_numeric_host() {
    rt::block_on(async {
        let lp = rt::current();
        let flags = ioq::sys::IOQ_RESOLVE_NUMERIC | ioq::sys::IOQ_RESOLVE_INET;
        let addrs = lp
            .resolve(Some("127.0.0.1"), Some("8080"), flags)
            .await
            .unwrap();
        assert!(
            addrs.contains(&"127.0.0.1:8080".parse().unwrap()),
            "{:?}",
            addrs
        );
        let e = lp.resolve(None, None, 0).await.err();
        assert_eq!(e, Some(Error::INVAL));
    });
}

#[test]
fn pooled_receive_single_and_multishot() {
    rt::block_on(async {
        let lp = rt::current();
        let pool = lp.pool(4, 256).unwrap();
        let (_l, c, s) = pair(&lp).await;
        let rx = s.recv_pool(&pool);
        let _ = c.send(b"pooled".to_vec()).await;
        let buf = rx.await.unwrap().expect("a buffer");
        assert_eq!(&buf[..], b"pooled");
        drop(buf); // goes back to the pool

        let mut multi = s.recv_pool_multi(&pool);
        let mut got = Vec::new();
        let mut held = Vec::new();
        for chunk in [&b"one"[..], &b"two"[..], &b"three"[..]] {
            let _ = c.send(chunk).await;
            // Stream data may coalesce: read until this chunk is in.
            while got.len() < 3 + 3 + 5 && !got.ends_with(chunk) {
                let b = multi.next().await.unwrap().unwrap().unwrap();
                got.extend_from_slice(&b);
                held.push(b);
            }
        }
        assert_eq!(got, b"onetwothree");
        drop(held);
        c.shutdown().await.unwrap();
        // End of stream arrives as Ok(None) (or, if the backend ends the multishot on its
        // own, as the end of the sequence).
        match multi.next().await {
            None | Some(Ok(None)) => {}
            Some(Ok(Some(b))) => panic!("unexpected data {:?}", &b[..]),
            Some(Err(e)) => panic!("unexpected error {}", e),
        }
    });
}

#[test]
fn multishot_accept_until_cancelled() {
    rt::block_on(async {
        let lp = rt::current();
        let l = lp.tcp_listen(local()).unwrap();
        let addr = l.local_addr().unwrap();
        let mut inc = l.incoming();
        let c1 = lp.connect(addr).await.unwrap();
        let c2 = lp.connect(addr).await.unwrap();
        let s1 = inc.next().await.unwrap().unwrap();
        let s2 = inc.next().await.unwrap().unwrap();
        let mut peers = vec![s1.peer_addr().unwrap(), s2.peer_addr().unwrap()];
        let mut locals = vec![c1.local_addr().unwrap(), c2.local_addr().unwrap()];
        peers.sort();
        locals.sort();
        assert_eq!(peers, locals);
        assert_eq!(inc.cancel().await, Ok(1));
        assert_eq!(
            inc.next().await.map(|r| r.err()),
            Some(Some(Error::CANCELED))
        );
        assert!(inc.next().await.is_none());
    });
}

#[test]
fn posts_from_other_threads_arrive_in_order() {
    let lp = Loop::new().unwrap();
    let remote = lp.remote();
    let t = std::thread::spawn(move || {
        for i in 0..100u64 {
            remote.post(i, -(i as i64)).unwrap();
        }
        remote.wake().unwrap();
        remote
    });
    lp.block_on(async {
        for i in 0..100u64 {
            assert_eq!(lp.next_post().await, Ok((i, -(i as i64))));
        }
    });
    let remote = t.join().unwrap();
    drop(lp);
    assert_eq!(remote.post(1, 1), Err(Error::BADHANDLE), "the loop is gone");
}

#[test]
fn adopted_descriptors_work_like_own_ones() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    rt::block_on(async move {
        let lp = rt::current();
        let l = TcpListener::adopt(&lp, std_listener.into()).unwrap();
        assert_eq!(l.local_addr().unwrap(), addr);
        assert!(l.os_handle().unwrap() > 0);
        let acc = l.accept();
        let c = lp.connect(addr).await.unwrap();
        let s = acc.await.unwrap();
        let (r, _) = s.send(b"x".to_vec()).await;
        assert_eq!(r, Ok(1));
        assert_eq!(recv_exact(&c, 1).await, b"x");
    });
}

#[test]
fn errors_carry_code_and_name() {
    rt::block_on(async {
        let lp = rt::current();
        // A port that was just free: nobody listens there.
        let l = lp.tcp_listen(local()).unwrap();
        let addr = l.local_addr().unwrap();
        l.close().await.unwrap();
        let e = lp.connect(addr).await.err().unwrap();
        assert_eq!(e, Error::CONNREFUSED);
        assert_eq!(
            (e.code(), e.name()),
            (ioq::sys::IOQ_ECONNREFUSED, "ECONNREFUSED")
        );

        // Zero-length buffers are refused at submission; the buffer still comes back.
        let (_l, c, _s) = pair(&lp).await;
        let (r, b) = c.send(Vec::with_capacity(8)).await;
        assert_eq!(r, Err(Error::INVAL));
        assert_eq!(b.capacity(), 8);

        let taken = lp.tcp_listen(local()).unwrap();
        let e = lp.tcp_listen(taken.local_addr().unwrap()).err();
        assert_eq!(e, Some(Error::ADDRINUSE));
        assert_eq!(lp.pool(0, 16).err(), Some(Error::INVAL));
    });
}

#[test]
fn socket_options_and_queries() {
    rt::block_on(async {
        let lp = rt::current();
        assert!(lp.loop_fd().unwrap() >= 0);
        let (_l, c, _s) = pair(&lp).await;
        c.set_option(ioq::sys::IOQ_OPT_RCVBUF, 65536).unwrap();
        c.set_option(ioq::sys::IOQ_OPT_KEEPALIVE, 1).unwrap();
        assert_eq!(c.set_option(9999, 1), Err(Error::INVAL));
        assert!(c.os_handle().unwrap() > 0);
        assert_ne!(c.raw_handle(), 0);
        let u = lp.udp_bind(local()).unwrap();
        u.set_broadcast(true).unwrap();
    });
}

#[test]
fn ipv6_loopback_when_the_machine_has_it() {
    rt::block_on(async {
        let lp = rt::current();
        let l = match lp.tcp_listen("[::1]:0".parse().unwrap()) {
            Ok(l) => l,
            Err(e) if e == Error::ADDRNOTAVAIL || e == Error::AFNOSUPPORT => return,
            Err(e) => panic!("{}", e),
        };
        let addr = l.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let acc = l.accept();
        let c = lp.connect(addr).await.unwrap();
        let s = acc.await.unwrap();
        let (r, _) = c.send(b"v6".to_vec()).await;
        assert_eq!(r, Ok(2));
        assert_eq!(recv_exact(&s, 2).await, b"v6");
    });
}
