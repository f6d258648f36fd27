//! The std-only executor: spawn, join, and an echo server with 100 connections.

use std::net::SocketAddr;

use ioq::{rt, TcpStream};

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

async fn client(addr: SocketAddr, i: usize) -> ioq::Result<()> {
    let conn = rt::current().connect(addr).await?;
    let msg: Vec<u8> = (0..1000 + i).map(|k| (k * 7 + i) as u8).collect();
    let (r, msg) = conn.send(msg).await;
    r?;
    let mut got = Vec::new();
    while got.len() < msg.len() {
        let (r, b) = conn.recv(Vec::with_capacity(4096)).await;
        if r? == 0 {
            break;
        }
        got.extend_from_slice(&b);
    }
    assert_eq!(got, msg, "client {} got its bytes back", i);
    conn.shutdown().await?;
    let (r, _) = conn.recv(Vec::with_capacity(16)).await;
    assert_eq!(r, Ok(0));
    conn.close().await
}

#[test]
fn echo_with_100_connections() {
    const N: usize = 100;
    rt::block_on(async {
        let lp = rt::current();
        let l = lp.tcp_listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let server = rt::spawn(async move {
            let mut handlers = Vec::new();
            for _ in 0..N {
                let conn = l.accept().await.unwrap();
                handlers.push(rt::spawn(echo(conn)));
            }
            let mut total = 0;
            for h in handlers {
                total += h.await.unwrap().unwrap();
            }
            total
        });
        let clients: Vec<_> = (0..N).map(|i| rt::spawn(client(addr, i))).collect();
        for c in clients {
            c.await.unwrap().unwrap();
        }
        let expect: usize = (0..N).map(|i| 1000 + i).sum();
        assert_eq!(server.await.unwrap(), expect);
        assert_eq!(lp.in_flight(), 0, "nothing left in flight");
    });
}

#[test]
fn spawn_join_and_nested_spawn() {
    let v = rt::block_on(async {
        let h = rt::spawn(async {
            let inner = rt::spawn(async { 20 });
            inner.await.unwrap() + 1
        });
        h.await.unwrap() * 2
    });
    assert_eq!(v, 42);
}

#[test]
fn wakers_from_other_threads_wake_the_loop() {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Waker};

    struct Shared {
        done: bool,
        waker: Option<Waker>,
    }
    struct Wait(Arc<Mutex<Shared>>);
    impl Future for Wait {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let mut s = self.0.lock().unwrap();
            if s.done {
                return Poll::Ready(());
            }
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
    let st = Arc::new(Mutex::new(Shared {
        done: false,
        waker: None,
    }));
    let st2 = st.clone();
    rt::block_on(async move {
        let t = std::thread::spawn(move || loop {
            let mut s = st2.lock().unwrap();
            if let Some(w) = s.waker.take() {
                s.done = true;
                drop(s);
                w.wake();
                return;
            }
            drop(s);
            std::thread::yield_now();
        });
        Wait(st).await;
        t.join().unwrap();
    });
}

#[test]
fn join_handle_of_a_task_dropped_with_the_loop() {
    let lp = ioq::Loop::new().unwrap();
    let h = lp.spawn(async { std::future::pending::<()>().await });
    lp.block_on(async {
        rt::current()
            .sleep(std::time::Duration::from_millis(1))
            .await
    })
    .unwrap();
    let other = ioq::Loop::new().unwrap();
    drop(lp);
    assert!(other.block_on(h).unwrap_err().is_cancelled());
}

#[test]
fn spawning_on_a_dropped_loop_reports_ecanceled() {
    let lp = ioq::Loop::new().unwrap();
    let r = lp.handle();
    drop(lp);
    let h = r.spawn(async { 1 });
    assert!(h.is_finished());
    assert!(rt::block_on(h).unwrap_err().is_cancelled());
}

/// A waker that counts its wake-ups (and wakes nothing else).
struct CountWaker(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Polls `f` once with a waker of its own: the way a combinator polls what it holds.
fn poll_with<F: std::future::Future + Unpin>(
    f: &mut F,
    w: &std::sync::Arc<CountWaker>,
) -> std::task::Poll<F::Output> {
    let waker = std::task::Waker::from(w.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    std::pin::Pin::new(f).poll(&mut cx)
}

#[test]
fn an_operation_made_in_one_task_and_awaited_in_another_wakes_the_second() {
    // The slot of an operation made inside a task's poll names that task at once; whoever
    // awaits it later must still be the one woken.
    rt::block_on(async {
        let lp = rt::current();
        let (tx, rx) = std::sync::mpsc::channel();
        let maker = rt::spawn(async move {
            tx.send(rt::sleep(std::time::Duration::from_millis(20))).unwrap();
        });
        maker.await.unwrap();
        let op = rx.recv().unwrap();
        let waiter = lp.spawn(async move { op.await });
        assert_eq!(waiter.await.unwrap(), Ok(()));
    });
}

#[test]
fn an_operation_first_polled_by_a_combinator_then_awaited_wakes_the_task() {
    // First polled with another waker in the same poll of the task that made it (a
    // combinator's), then awaited directly: the task's own waker must replace the other.
    rt::block_on(async {
        let other = std::sync::Arc::new(CountWaker(Default::default()));
        let mut op = rt::sleep(std::time::Duration::from_millis(20));
        assert!(poll_with(&mut op, &other).is_pending());
        assert_eq!((&mut op).await, Ok(()));
        assert_eq!(other.0.load(std::sync::atomic::Ordering::SeqCst), 0);
    });
    // The other way round: polled directly first (the fast first poll), then only by the
    // combinator's waker, which must be the one woken.
    rt::block_on(async {
        let other = std::sync::Arc::new(CountWaker(Default::default()));
        let mut op = rt::sleep(std::time::Duration::from_millis(20));
        let r = rt::select(&mut op, async {}).await;
        assert!(matches!(r, rt::Either::Right(())));
        assert!(poll_with(&mut op, &other).is_pending());
        // Let the loop run until the timer fires, without polling `op` ourselves.
        rt::sleep(std::time::Duration::from_millis(60)).await.unwrap();
        assert_eq!(other.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(poll_with(&mut op, &other), std::task::Poll::Ready(Ok(())));
    });
}

#[test]
fn an_operation_made_outside_of_tasks_completes_when_awaited_in_one() {
    let lp = ioq::Loop::new().unwrap();
    let op = lp.sleep(std::time::Duration::from_millis(10));
    let r = lp.handle();
    assert_eq!(lp.block_on(async move { r.spawn(op).await.unwrap() }), Ok(()));
}

#[test]
fn an_operation_never_awaited_by_its_task_costs_it_a_wakeup_only() {
    // The operation names the task that made it; its completion wakes that task once,
    // spuriously, and the task goes on awaiting something else.
    rt::block_on(async {
        let polls = std::rc::Rc::new(std::cell::Cell::new(0));
        let p = polls.clone();
        let t = rt::spawn(async move {
            let kept = rt::sleep(std::time::Duration::from_millis(5));
            let mut long = rt::sleep(std::time::Duration::from_millis(80));
            CountPolls(&mut long, p).await.unwrap();
            drop(kept);
        });
        t.await.unwrap();
        assert!((2..=3).contains(&polls.get()), "polled {} times", polls.get());
    });
}

#[test]
fn slots_are_reused_in_any_order_and_stale_tokens_never_match() {
    // Waves of operations in flight, finished in an order unlike their start: the slab's
    // free list hands slots back in every order, and a future never sees another's result.
    rt::block_on(async {
        let lp = rt::current();
        for wave in 0..5u64 {
            let mut ops: Vec<_> = (0..64u64)
                .map(|i| {
                    let d = std::time::Duration::from_micros(((i * 37 + wave * 11) % 64) * 50);
                    lp.sleep(d)
                })
                .collect();
            // Drop a third of them before they finish (cancelled, slots freed later).
            for i in (0..ops.len()).rev().step_by(3) {
                drop(ops.remove(i));
            }
            for op in ops {
                assert_eq!(op.await, Ok(()));
            }
        }
        // Give the cancelled ones their completions, then nothing is left in flight.
        rt::sleep(std::time::Duration::from_millis(10)).await.unwrap();
        assert_eq!(lp.in_flight(), 0);
    });
}

/// Polls the operation it holds and counts its own polls.
struct CountPolls<'a, F>(&'a mut F, std::rc::Rc<std::cell::Cell<usize>>);

impl<F: std::future::Future + Unpin> std::future::Future for CountPolls<'_, F> {
    type Output = F::Output;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.1.set(self.1.get() + 1);
        std::pin::Pin::new(&mut *self.0).poll(cx)
    }
}
