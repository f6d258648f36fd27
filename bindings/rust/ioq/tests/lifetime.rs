//! Buffer ownership across cancellation, dropped futures, forgotten futures and a dropped
//! loop: the buffer always comes back or is freed after the kernel let go of it.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use ioq::{rt, Error, IoBuf, IoBufMut, Loop, LoopRef, TcpStream};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A receive buffer that counts its drops.
struct Counted {
    data: Vec<u8>,
    drops: Rc<Cell<usize>>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
    }
}

unsafe impl IoBuf for Counted {
    fn stable_ptr(&self) -> *const u8 {
        self.data.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.len()
    }
    fn bytes_total(&self) -> usize {
        self.data.capacity()
    }
}

unsafe impl IoBufMut for Counted {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        self.data.set_len(n);
    }
}

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let w = Waker::from(Arc::new(Noop));
    Pin::new(f).poll(&mut Context::from_waker(&w))
}

/// Drives the loop by hand until `f` is ready.
fn drive<F: Future + Unpin>(lp: &LoopRef, mut f: F) -> F::Output {
    loop {
        if let Poll::Ready(v) = poll_once(&mut f) {
            return v;
        }
        lp.turn(None).unwrap();
    }
}

fn pair(lp: &LoopRef) -> (ioq::TcpListener, TcpStream, TcpStream) {
    let l = lp.tcp_listen(local()).unwrap();
    let acc = l.accept();
    let c = drive(lp, lp.connect(l.local_addr().unwrap())).unwrap();
    let s = drive(lp, acc).unwrap();
    (l, c, s)
}

#[test]
fn cancel_gives_the_buffer_back() {
    rt::block_on(async {
        let lp = rt::current();
        let l = lp.tcp_listen(local()).unwrap();
        let acc = l.accept();
        let _c = lp.connect(l.local_addr().unwrap()).await.unwrap();
        let s = acc.await.unwrap();
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(b"kept");
        let ptr = buf.as_ptr();
        let rx = s.recv(buf);
        assert_eq!(rx.cancel().await, Ok(1));
        let (r, buf) = rx.await;
        assert_eq!(r, Err(Error::CANCELED));
        assert_eq!(buf.as_ptr(), ptr, "the very same allocation comes back");
        assert_eq!(buf.capacity(), 4096);
        assert_eq!(buf, b"kept", "nothing was received into it");
    });
}

#[test]
fn closing_a_handle_cancels_its_operations_first() {
    rt::block_on(async {
        let lp = rt::current();
        let l = lp.tcp_listen(local()).unwrap();
        let acc = l.accept();
        let _c = lp.connect(l.local_addr().unwrap()).await.unwrap();
        let s = acc.await.unwrap();
        let rx = s.recv(vec![0u8; 64]);
        s.close().await.unwrap();
        let (r, buf) = rx.await;
        assert_eq!(r, Err(Error::CANCELED));
        assert_eq!(buf.len(), 64);
    });
}

#[test]
fn a_dropped_future_frees_its_buffer_only_after_the_completion() {
    let lp = Loop::new().unwrap();
    let (_l, _c, s) = pair(&lp);
    let drops = Rc::new(Cell::new(0));
    let rx = s.recv(Counted {
        data: Vec::with_capacity(128),
        drops: drops.clone(),
    });
    assert!(rx.is_pending());
    drop(rx);
    assert_eq!(drops.get(), 0, "the kernel may still write into it");
    assert_eq!(lp.in_flight(), 1);
    while lp.in_flight() > 0 {
        lp.turn(Some(Duration::from_millis(100))).unwrap();
    }
    assert_eq!(drops.get(), 1, "freed once the cancellation completed");
}

#[test]
fn a_dropped_accept_closes_the_connection_it_got() {
    let lp = Loop::new().unwrap();
    let l = lp.tcp_listen(local()).unwrap();
    let acc = l.accept();
    let c = drive(&lp, lp.connect(l.local_addr().unwrap())).unwrap();
    drop(acc);
    while lp.in_flight() > 0 {
        lp.turn(Some(Duration::from_millis(100))).unwrap();
    }
    // Either the accept was cancelled before it took the connection (which then waits in
    // the backlog) or the accepted handle was closed: the peer sees no data either way.
    let (r, _) = drive(&lp, c.send(b"x".to_vec()));
    assert!(r == Ok(1) || r.is_err());
}

#[test]
fn forgetting_a_future_is_safe() {
    let lp = Loop::new().unwrap();
    let (_l, c, s) = pair(&lp);
    let rx = s.recv(vec![0u8; 4096]);
    std::mem::forget(rx);
    // The kernel writes into the forgotten operation's buffer, which the loop still owns.
    let (r, _) = drive(&lp, c.send(vec![9u8; 1000]));
    assert_eq!(r, Ok(1000));
    for _ in 0..5 {
        lp.turn(Some(Duration::from_millis(10))).unwrap();
    }
    // A new receive after the forgotten one still works.
    let (r, _) = drive(&lp, c.send(b"again".to_vec()));
    assert_eq!(r, Ok(5));
    let (r, b) = drive(&lp, s.recv(Vec::with_capacity(64)));
    assert_eq!(r, Ok(5));
    assert_eq!(b, b"again");
    drop(lp); // frees the loop with the forgotten operation's slot still there
}

#[test]
fn dropping_the_loop_cancels_pending_operations_and_returns_buffers() {
    let lp = Loop::new().unwrap();
    let (_l, _c, s) = pair(&lp);
    let drops = Rc::new(Cell::new(0));
    let mut rx = s.recv(Counted {
        data: Vec::with_capacity(64),
        drops: drops.clone(),
    });
    let mut t = lp.sleep(Duration::from_secs(3600));
    let mut rx2 = s.recv(vec![1u8; 32]);
    let orphan = s.recv(Counted {
        data: Vec::with_capacity(64),
        drops: drops.clone(),
    });
    drop(orphan);
    assert!(poll_once(&mut rx).is_pending());
    assert!(poll_once(&mut t).is_pending());
    let r = lp.handle();
    drop(lp);
    assert_eq!(drops.get(), 1, "the orphan's buffer is freed with the loop");
    match poll_once(&mut rx) {
        Poll::Ready((res, b)) => {
            assert_eq!(res, Err(Error::CANCELED));
            assert_eq!(b.data.capacity(), 64);
        }
        Poll::Pending => panic!("still pending after the loop was dropped"),
    }
    assert_eq!(drops.get(), 2);
    assert!(matches!(
        poll_once(&mut t),
        Poll::Ready(Err(Error::CANCELED))
    ));
    match poll_once(&mut rx2) {
        Poll::Ready((res, b)) => assert_eq!((res, b), (Err(Error::CANCELED), vec![1u8; 32])),
        Poll::Pending => panic!("still pending"),
    }
    // Everything done through the stale loop now fails cleanly.
    let (res, _) = drive(&r, s.recv(vec![0u8; 8]));
    assert_eq!(res, Err(Error::BADHANDLE));
    assert_eq!(r.turn(Some(Duration::ZERO)), Err(Error::BADHANDLE));
}

#[test]
fn dropping_the_runtime_drops_spawned_tasks_with_pending_io() {
    let drops = Rc::new(Cell::new(0));
    let d2 = drops.clone();
    rt::block_on(async move {
        let lp = rt::current();
        let l = lp.tcp_listen(local()).unwrap();
        let addr = l.local_addr().unwrap();
        for _ in 0..10 {
            let d = d2.clone();
            rt::spawn(async move {
                let c = rt::current().connect(addr).await.unwrap();
                // Never answered: pending when the runtime ends.
                let _ = c
                    .recv(Counted {
                        data: Vec::with_capacity(64),
                        drops: d,
                    })
                    .await;
                unreachable!();
            });
        }
        // Kept open (never answered) until the runtime ends.
        let mut conns = Vec::new();
        for _ in 0..10 {
            conns.push(l.accept().await.unwrap());
        }
        rt::current()
            .sleep(Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(d2.get(), 0);
        drop(conns);
    });
    assert_eq!(
        drops.get(),
        10,
        "every pending buffer was freed after the loop ended"
    );
}

#[test]
fn pool_buffers_outlive_the_loop_value() {
    let lp = Loop::new().unwrap();
    let pool = lp.pool(2, 64).unwrap();
    let (_l, c, s) = pair(&lp);
    let rx = s.recv_pool(&pool);
    let (r, _) = drive(&lp, c.send(b"pool data".to_vec()));
    assert_eq!(r, Ok(9));
    let buf = drive(&lp, rx).unwrap().unwrap();
    let slice: &[u8] = &buf;
    let r = lp.handle();
    drop(lp);
    // The C loop (and the pool's memory) is freed only after the last buffer goes.
    assert_eq!(slice, b"pool data");
    assert_eq!(
        r.tcp_listen(local()).err(),
        Some(Error::BADHANDLE),
        "closed for new work"
    );
    drop(buf);
    drop(pool);
    assert_eq!(r.backend(), "", "freed now");
}

#[test]
fn a_cancelled_timeout_reports_ecanceled() {
    rt::block_on(async {
        let lp = rt::current();
        let t = lp.sleep(Duration::from_secs(3600));
        assert_eq!(t.cancel().await, Ok(1));
        assert_eq!(t.await, Err(Error::CANCELED));
        // Cancelling what has already completed finds nothing.
        let t = lp.sleep(Duration::from_millis(1));
        let t2 = lp.sleep(Duration::from_millis(5));
        t2.await.unwrap();
        assert_eq!(t.cancel().await, Ok(0));
        assert_eq!(t.await, Ok(()));
    });
}
