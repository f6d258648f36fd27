//! futures-io's AsyncRead / AsyncBufRead / AsyncWrite on ioq's streams, on ioq's own
//! runtime: data, end of stream, errors, shutdown, drop and close with a send in flight,
//! reads that outlive their future, and every byte of large transfers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use ioq::rt::{self, Either};
use ioq::{sys, LoopRef, TcpListener, TcpStream};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn pair(lp: &LoopRef) -> (TcpListener, TcpStream, TcpStream) {
    let l = lp.tcp_listen(local()).unwrap();
    let acc = l.accept();
    let c = lp.connect(l.local_addr().unwrap()).await.unwrap();
    let s = acc.await.unwrap();
    (l, c, s)
}

async fn settle(lp: &LoopRef) {
    for _ in 0..3 {
        lp.sleep(Duration::from_millis(1)).await.unwrap();
    }
}

fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + seed * 7) % 251) as u8).collect()
}

#[test]
fn write_then_read_in_pieces() {
    rt::block_on(async {
        let lp = rt::current();
        let (_l, mut c, mut s) = pair(&lp).await;
        c.write_all(b"hello, world").await.unwrap();
        c.flush().await.unwrap();
        // A read smaller than what arrived takes part of it; the rest stays buffered.
        let mut five = [0u8; 5];
        s.read_exact(&mut five).await.unwrap();
        assert_eq!(&five, b"hello");
        let mut one = [0u8; 1];
        assert_eq!(s.read(&mut one).await.unwrap(), 1);
        assert_eq!(&one, b",");
        let mut rest = [0u8; 6];
        s.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b" world");
        // An empty read returns at once.
        assert_eq!(s.read(&mut []).await.unwrap(), 0);
        // Vectored writes gather every slice.
        let parts = [
            std::io::IoSlice::new(b"ab"),
            std::io::IoSlice::new(b""),
            std::io::IoSlice::new(b"cde"),
        ];
        assert_eq!(s.write_vectored(&parts).await.unwrap(), 5);
        s.flush().await.unwrap();
        let mut got = [0u8; 5];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abcde");
        // Writing nothing is no operation.
        assert_eq!(c.write(b"").await.unwrap(), 0);
    });
}

#[test]
fn close_half_closes_and_the_peer_reads_to_the_end() {
    rt::block_on(async {
        let lp = rt::current();
        let (_l, mut c, mut s) = pair(&lp).await;
        let data = pattern(100_000, 1);
        c.write_all(&data).await.unwrap();
        AsyncWriteExt::close(&mut c).await.unwrap();
        AsyncWriteExt::close(&mut c).await.unwrap(); // a second close is a no-op
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert!(got == data, "every byte, in order");
        let mut b = [0u8; 4];
        assert_eq!(s.read(&mut b).await.unwrap(), 0, "end of stream stays");
        // The half-closed side still reads.
        s.write_all(b"reply").await.unwrap();
        s.flush().await.unwrap();
        let mut r = [0u8; 5];
        c.read_exact(&mut r).await.unwrap();
        assert_eq!(&r, b"reply");
        // Writing after close is an error, not a crash.
        let e = c.write_all(b"late").await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    });
}

#[test]
fn large_transfers_both_ways_at_once() {
    const N: usize = 1 << 20;
    rt::block_on(async {
        let lp = rt::current();
        let (_l, c, s) = pair(&lp).await;
        let (mut cr, mut cw) = c.split();
        let (mut sr, mut sw) = s.split();
        let a = pattern(N, 2);
        let b = pattern(N, 3);
        let (a2, b2) = (a.clone(), b.clone());
        let w1 = rt::spawn(async move {
            // Uneven chunk sizes, below and above the adapter's buffer sizes.
            let mut off = 0;
            let mut k = 0;
            while off < a2.len() {
                let n = [1, 700, 16 * 1024, 100_000, 3][k % 5].min(a2.len() - off);
                cw.write_all(&a2[off..off + n]).await.unwrap();
                off += n;
                k += 1;
            }
            cw.close().await.unwrap();
        });
        let w2 = rt::spawn(async move {
            sw.write_all(&b2).await.unwrap();
            sw.close().await.unwrap();
        });
        let r1 = rt::spawn(async move {
            let mut v = Vec::new();
            sr.read_to_end(&mut v).await.unwrap();
            v
        });
        let r2 = rt::spawn(async move {
            let mut v = Vec::new();
            let mut buf = vec![0u8; 3000];
            loop {
                let n = cr.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                v.extend_from_slice(&buf[..n]);
            }
            v
        });
        w1.await.unwrap();
        w2.await.unwrap();
        assert!(
            r1.await.unwrap() == a,
            "server got every byte of the client"
        );
        assert!(
            r2.await.unwrap() == b,
            "client got every byte of the server"
        );
    });
}

/// Reads to the end of stream.
async fn read_all(mut s: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    got
}

/// With socket buffers this small a send of the adapter's 64 KiB cannot complete at once:
/// the last one is still in flight when write_all returns.
async fn small_buffers(lp: &LoopRef) -> (TcpListener, TcpStream, TcpStream) {
    let (l, c, s) = pair(lp).await;
    c.set_option(sys::IOQ_OPT_SNDBUF, 16 * 1024).unwrap();
    s.set_option(sys::IOQ_OPT_RCVBUF, 16 * 1024).unwrap();
    (l, c, s)
}

#[test]
fn bytes_a_write_accepted_survive_drop_and_close() {
    rt::block_on(async {
        let lp = rt::current();
        let data = pattern(128 * 1024, 4);

        // Dropped right after write_all: the last send still goes out, then the close.
        let (_l, mut c, s) = small_buffers(&lp).await;
        let reader = rt::spawn(read_all(s));
        c.write_all(&data).await.unwrap();
        drop(c);
        let got = reader.await.unwrap();
        assert!(
            got == data,
            "dropped: {} of {} bytes",
            got.len(),
            data.len()
        );

        // Closed (the inherent close) right after write_all: the same, and the close
        // future completes after the send.
        let (_l, mut c, s) = small_buffers(&lp).await;
        let reader = rt::spawn(read_all(s));
        c.write_all(&data).await.unwrap();
        c.close().await.unwrap();
        assert!(!reader.is_finished(), "the close waited for the send only");
        let got = reader.await.unwrap();
        assert!(got == data, "closed: {} of {} bytes", got.len(), data.len());
        settle(&lp).await;
    });
}

#[test]
fn a_read_outlives_its_future_and_loses_nothing() {
    rt::block_on(async {
        let lp = rt::current();
        let (_l, mut c, mut s) = pair(&lp).await;
        let before = lp.in_flight();
        let mut buf = [0u8; 16];
        // The read loses the race: its future is dropped, its receive stays in flight.
        let r = rt::select(s.read(&mut buf), lp.sleep(Duration::from_millis(5))).await;
        assert!(matches!(r, Either::Right(_)));
        assert_eq!(lp.in_flight(), before + 1, "the receive is still there");
        c.write_all(b"late data").await.unwrap();
        c.flush().await.unwrap();
        let n = s.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"late data");
        // Dropping the stream cancels a receive in flight: nothing is left behind.
        let r = rt::select(s.read(&mut buf), lp.sleep(Duration::from_millis(1))).await;
        assert!(matches!(r, Either::Right(_)));
        drop(s);
        settle(&lp).await;
        assert_eq!(
            lp.in_flight(),
            before,
            "the receive was cancelled with the stream"
        );
    });
}

#[test]
fn resets_are_errors_on_read_and_write() {
    rt::block_on(async {
        let lp = rt::current();
        // Read side: the peer resets while a read waits.
        let (_l, c, mut s) = pair(&lp).await;
        c.set_option(sys::IOQ_OPT_LINGER, 0).unwrap(); // close sends RST
        let reader = rt::spawn(async move {
            let mut b = [0u8; 8];
            s.read(&mut b).await
        });
        rt::sleep(Duration::from_millis(5)).await.unwrap();
        c.close().await.unwrap();
        let e = reader.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{:?}", e);

        // Write side: writes after the peer reset fail on a later write or flush.
        let (_l, mut c, s) = pair(&lp).await;
        s.set_option(sys::IOQ_OPT_LINGER, 0).unwrap();
        s.close().await.unwrap();
        rt::sleep(Duration::from_millis(5)).await.unwrap();
        let chunk = vec![7u8; 64 * 1024];
        let mut err = None;
        for _ in 0..64 {
            if let Err(e) = async {
                c.write_all(&chunk).await?;
                c.flush().await
            }
            .await
            {
                err = Some(e);
                break;
            }
        }
        let e = err.expect("writing to a reset connection fails");
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{:?}",
            e
        );
    });
}

#[test]
fn buffered_reading_of_lines() {
    rt::block_on(async {
        let lp = rt::current();
        let (_l, mut c, mut s) = pair(&lp).await;
        c.write_all(b"first line\nsecond\n\nno newline at the end")
            .await
            .unwrap();
        AsyncWriteExt::close(&mut c).await.unwrap();
        let mut line = String::new();
        let mut lines = Vec::new();
        loop {
            line.clear();
            if s.read_line(&mut line).await.unwrap() == 0 {
                break;
            }
            lines.push(line.clone());
        }
        assert_eq!(
            lines,
            ["first line\n", "second\n", "\n", "no newline at the end"]
        );
    });
}

#[test]
fn local_streams_have_the_same_adapters() {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "ioq-rust-traits-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let path = path.to_str().unwrap().to_string();
    rt::block_on(async {
        let lp = rt::current();
        let l = lp.local_listen(&path, true).unwrap();
        let acc = l.accept();
        let mut c = lp.local_connect(&path).await.unwrap();
        let mut s = acc.await.unwrap();
        let data = pattern(300_000, 5);
        let d2 = data.clone();
        let w = rt::spawn(async move {
            c.write_all(&d2).await.unwrap();
            AsyncWriteExt::close(&mut c).await.unwrap();
            c
        });
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert!(got == data);
        drop(w.await.unwrap());
    });
    let _ = std::fs::remove_file(&path);
}
