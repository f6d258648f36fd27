//! The executor's rules: JoinHandle (output, abort, JoinError on panic while the runtime
//! goes on), nested block_on, timeout, select, and spawns from other threads.

use std::cell::Cell;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ioq::rt::{self, Either};
use ioq::{Error, Loop, LoopRef, TcpListener, TcpStream};

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

/// Lets the loop take the completions of cancelled operations.
async fn settle(lp: &LoopRef) {
    for _ in 0..3 {
        lp.sleep(Duration::from_millis(1)).await.unwrap();
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[test]
fn join_handle_gives_the_output() {
    rt::block_on(async {
        let h = rt::spawn(async { "done".to_string() });
        assert_eq!(h.await.unwrap(), "done");
        let h = rt::spawn(async {
            rt::sleep(Duration::from_millis(2)).await.unwrap();
            7
        });
        assert!(!h.is_finished());
        assert_eq!(h.await.unwrap(), 7);
    });
}

#[test]
fn abort_drops_the_task_and_cancels_its_operations() {
    rt::block_on(async {
        let lp = rt::current();
        let (_l, _c, s) = pair(&lp).await;
        let before = lp.in_flight();
        let reached_end = Rc::new(Cell::new(false));
        let flag = reached_end.clone();
        let h = rt::spawn(async move {
            // Nobody sends: this receive waits until the task is aborted.
            let (r, _) = s.recv(Vec::with_capacity(64)).await;
            flag.set(true);
            r
        });
        rt::sleep(Duration::from_millis(5)).await.unwrap();
        assert_eq!(lp.in_flight(), before + 1, "the receive is in flight");
        assert!(!h.is_finished());
        h.abort();
        h.abort(); // twice is harmless
        let err = h.await.unwrap_err();
        assert!(err.is_cancelled() && !err.is_panic(), "{:?}", err);
        assert_eq!(err.to_string(), "task was cancelled");
        assert!(!reached_end.get(), "an aborted task does not run on");
        settle(&lp).await;
        assert_eq!(
            lp.in_flight(),
            before,
            "the receive was cancelled and taken"
        );
    });
}

#[test]
fn abort_before_the_first_poll_and_after_the_end() {
    rt::block_on(async {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let h = rt::spawn(async move { r.set(true) });
        h.abort();
        assert!(h.await.unwrap_err().is_cancelled());
        assert!(!ran.get(), "aborted before it ever ran");

        let h = rt::spawn(async { 5 });
        rt::sleep(Duration::from_millis(1)).await.unwrap();
        assert!(h.is_finished());
        h.abort(); // finished already: no effect
        assert_eq!(h.await.unwrap(), 5);
    });
}

#[test]
fn a_task_may_abort_itself() {
    rt::block_on(async {
        let slot: Rc<Cell<Option<rt::JoinHandle<()>>>> = Rc::new(Cell::new(None));
        let s = slot.clone();
        let steps = Rc::new(Cell::new(0));
        let st = steps.clone();
        let h = rt::spawn(async move {
            rt::sleep(Duration::from_millis(1)).await.unwrap();
            let me = s.take().expect("the handle is there");
            me.abort();
            s.set(Some(me));
            st.set(1);
            rt::sleep(Duration::from_millis(1)).await.unwrap();
            st.set(2);
        });
        // The task finds its own handle here.
        slot.set(Some(h));
        // Wait (without a fixed time: valgrind is slow) until the task has aborted itself.
        let mut waited = 0;
        while steps.get() == 0 && waited < 10_000 {
            rt::sleep(Duration::from_millis(1)).await.unwrap();
            waited += 1;
        }
        let h = slot.take().unwrap();
        assert!(h.await.unwrap_err().is_cancelled());
        assert_eq!(steps.get(), 1, "the task stopped at its next await");
    });
}

#[test]
fn a_panicking_task_gives_a_join_error_and_the_runtime_goes_on() {
    rt::block_on(async {
        let lp = rt::current();
        let (_l, c, s) = pair(&lp).await;
        let before = lp.in_flight();
        let bystander = rt::spawn(async {
            rt::sleep(Duration::from_millis(10)).await.unwrap();
            "still here"
        });
        let h = rt::spawn(async move {
            // An operation in flight when the panic comes: it is cancelled with the task.
            let pending = s.recv(Vec::with_capacity(16));
            rt::sleep(Duration::from_millis(1)).await.unwrap();
            if pending.is_pending() {
                panic!("boom {}", 42);
            }
            drop(pending);
        });
        let err = h.await.unwrap_err();
        assert!(err.is_panic() && !err.is_cancelled());
        assert_eq!(err.to_string(), "task panicked: boom 42");
        assert_eq!(panic_message(&*err.into_panic()), "boom 42");
        assert_eq!(bystander.await.unwrap(), "still here");
        settle(&lp).await;
        assert_eq!(
            lp.in_flight(),
            before,
            "the panicked task's receive was cancelled"
        );
        // The loop still does I/O.
        let (r, _) = c.send(b"after".to_vec()).await;
        assert_eq!(r, Ok(5));
        // A panic with a payload that is not text.
        let h = rt::spawn(async { std::panic::panic_any(17u32) });
        let err = h.await.unwrap_err();
        assert_eq!(err.to_string(), "task panicked");
        assert_eq!(*err.into_panic().downcast::<u32>().unwrap(), 17);
        // try_into_panic on a cancelled task gives the error back.
        let h = rt::spawn(std::future::pending::<()>());
        h.abort();
        assert!(h
            .await
            .unwrap_err()
            .try_into_panic()
            .unwrap_err()
            .is_cancelled());
    });
}

#[test]
fn a_panic_in_the_main_future_unwinds_out_of_block_on() {
    let r = panic::catch_unwind(|| {
        rt::block_on(async {
            rt::spawn(std::future::pending::<()>());
            panic!("main failed");
        })
    });
    assert_eq!(panic_message(&*r.unwrap_err()), "main failed");
    // The thread is usable again: no stale current loop, no nesting flag left behind.
    assert!(rt::try_current().is_none());
    assert_eq!(rt::block_on(async { 1 }), 1);
}

#[test]
fn nested_block_on_panics_with_a_clear_message() {
    let r = panic::catch_unwind(|| rt::block_on(async { rt::block_on(async { 1 }) }));
    let msg = panic_message(&*r.unwrap_err());
    assert!(
        msg.contains("block_on called inside a running block_on"),
        "message: {}",
        msg
    );
    // Also on another loop than the running one.
    let other = Loop::new().unwrap();
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        rt::block_on(async { other.block_on(async { 1 }) })
    }));
    assert!(panic_message(&*r.unwrap_err()).contains("would block the loop"));
    // Inside a spawned task it is that task's panic; the runtime goes on.
    let v = rt::block_on(async {
        let h = rt::spawn(async { rt::block_on(async { 1 }) });
        let err = h.await.unwrap_err();
        assert!(err.is_panic());
        assert!(err.to_string().contains("block_on called inside"));
        rt::sleep(Duration::from_millis(1)).await.unwrap();
        2
    });
    assert_eq!(v, 2);
    // Sequential block_on calls stay fine.
    assert_eq!(other.block_on(async { 3 }), 3);
}

#[test]
fn timeout_gives_the_output_or_elapsed_and_cancels() {
    rt::block_on(async {
        let lp = rt::current();
        assert_eq!(
            rt::timeout(Duration::from_secs(5), async { 9 }).await,
            Ok(9)
        );
        // A ready future wins even against a zero timeout (it is polled first).
        assert_eq!(rt::timeout(Duration::ZERO, async { 1 }).await, Ok(1));

        let (_l, c, s) = pair(&lp).await;
        let before = lp.in_flight();
        let t0 = Instant::now();
        let r = rt::timeout(Duration::from_millis(30), s.recv(Vec::with_capacity(8))).await;
        let waited = t0.elapsed();
        let e = r.unwrap_err();
        assert!(
            waited >= Duration::from_millis(30),
            "never early: {:?}",
            waited
        );
        assert_eq!(e.to_string(), "deadline has elapsed");
        assert_eq!(Error::from(e), Error::TIMEDOUT);
        assert_eq!(std::io::Error::from(e).kind(), std::io::ErrorKind::TimedOut);
        settle(&lp).await;
        assert_eq!(
            lp.in_flight(),
            before,
            "the timed-out receive was cancelled"
        );

        // In time: the receive's result and its buffer come back.
        let (r, _) = c.send(b"x".to_vec()).await;
        r.unwrap();
        let (r, b) = rt::timeout(Duration::from_secs(5), s.recv(Vec::with_capacity(8)))
            .await
            .unwrap();
        assert_eq!((r, b), (Ok(1), b"x".to_vec()));
        settle(&lp).await;
        assert_eq!(
            lp.in_flight(),
            before,
            "the timer of a finished timeout is gone"
        );
    });
}

#[test]
fn select_gives_the_first_and_drops_the_other() {
    rt::block_on(async {
        let lp = rt::current();
        let r = rt::select(
            rt::sleep(Duration::from_millis(1)),
            rt::sleep(Duration::from_secs(10)),
        )
        .await;
        assert!(matches!(r, Either::Left(Ok(()))));
        let r = rt::select(std::future::pending::<u8>(), async { "b" }).await;
        assert_eq!(r, Either::Right("b"));
        // Both ready: the first one wins.
        assert_eq!(rt::select(async { 1 }, async { 2 }).await, Either::Left(1));

        let (_l, c, s) = pair(&lp).await;
        let before = lp.in_flight();
        let (r, _) = c.send(b"hi".to_vec()).await;
        r.unwrap();
        let r = rt::select(
            lp.sleep(Duration::from_secs(10)),
            s.recv(Vec::with_capacity(8)),
        )
        .await;
        match r {
            Either::Right((r, b)) => assert_eq!((r, b), (Ok(2), b"hi".to_vec())),
            other => panic!("the receive should win: {:?}", other),
        }
        settle(&lp).await;
        assert_eq!(lp.in_flight(), before, "the losing timer was cancelled");
    });
}

#[test]
fn remote_spawn_runs_on_the_loop_thread_and_sends_the_result_back() {
    rt::block_on(async {
        let lp = rt::current();
        let l = lp.tcp_listen(local()).unwrap();
        let addr = l.local_addr().unwrap();
        let loop_thread = std::thread::current().id();
        let remote = lp.remote();
        // The ioq work of another thread: accept a connection and read from it here.
        let server = rt::spawn(async move {
            let c = l.accept().await.unwrap();
            let (r, b) = c.recv(Vec::with_capacity(64)).await;
            r.unwrap();
            b
        });
        let worker = std::thread::spawn(move || {
            // That thread has an ioq loop of its own to await the handle with.
            rt::block_on(async move {
                let h = remote.spawn(move || async move {
                    assert_eq!(std::thread::current().id(), loop_thread);
                    let c = rt::current().connect(addr).await.unwrap();
                    let (r, _) = c.send(b"from afar".to_vec()).await;
                    r.unwrap()
                });
                let n = h.await.unwrap();
                let p = remote.spawn(|| async { panic!("remote boom") });
                let e = p.await.unwrap_err();
                assert!(e.is_panic() && e.to_string().contains("remote boom"));
                let a = remote.spawn(std::future::pending::<()>);
                a.abort();
                assert!(a.await.unwrap_err().is_cancelled());
                n
            })
        });
        assert_eq!(server.await.unwrap(), b"from afar");
        // Wait for the worker without blocking the loop it needs.
        while !worker.is_finished() {
            rt::sleep(Duration::from_millis(1)).await.unwrap();
        }
        assert_eq!(worker.join().unwrap(), 9);
    });
}

#[test]
fn remote_spawn_on_a_dropped_loop_is_cancelled() {
    let lp = Loop::new().unwrap();
    let remote = lp.remote();
    let queued = remote.spawn(|| async { 1 });
    drop(lp);
    let late = remote.spawn(|| async { 2 });
    assert!(late.is_finished());
    rt::block_on(async {
        assert!(queued.await.unwrap_err().is_cancelled());
        assert!(late.await.unwrap_err().is_cancelled());
    });
}

/// A waker that counts its wake-ups.
struct Count(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Count {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn an_operation_polled_with_another_waker_wakes_that_waker() {
    use std::future::Future;
    use std::sync::atomic::Ordering;
    use std::task::{Context, Poll, Waker};
    rt::block_on(async {
        let lp = rt::current();
        let (_l, c, s) = pair(&lp).await;
        let h = rt::spawn(async move {
            // Polled inside a task, but with a waker of its own (as a combinator would):
            // the completion must wake that waker, not only the task.
            let count = std::sync::Arc::new(Count(0.into()));
            let w = Waker::from(count.clone());
            let mut op = s.recv(Vec::with_capacity(16));
            let mut cx = Context::from_waker(&w);
            assert!(Pin::new(&mut op).poll(&mut cx).is_pending());
            while count.0.load(Ordering::SeqCst) == 0 {
                rt::sleep(Duration::from_millis(1)).await.unwrap();
            }
            let (r, b) = op.await;
            assert_eq!(r.unwrap(), 2);
            assert_eq!(b, b"hi");
        });
        rt::sleep(Duration::from_millis(2)).await.unwrap();
        c.send(b"hi".to_vec()).await.0.unwrap();
        rt::timeout(Duration::from_secs(5), h)
            .await
            .expect("the other waker was woken")
            .unwrap();
    });
}

#[test]
fn an_operation_moved_to_another_task_wakes_its_new_owner() {
    use std::cell::RefCell;
    use std::future::Future;
    use std::task::Poll;
    rt::block_on(async {
        let lp = rt::current();
        let (_l, c, s) = pair(&lp).await;
        let shelf = Rc::new(RefCell::new(None));
        // Task A starts the receive, polls it once, hands it over and ends.
        let put = shelf.clone();
        rt::spawn(async move {
            let mut op = s.recv(Vec::with_capacity(16));
            futures_util::future::poll_fn(|cx| {
                assert!(Pin::new(&mut op).poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            *put.borrow_mut() = Some((op, s));
        })
        .await
        .unwrap();
        // A new task may take A's place in the task table.
        let idle = rt::spawn(rt::sleep(Duration::from_secs(30)));
        // Task B awaits the receive that A started.
        let (op, _s) = shelf.borrow_mut().take().unwrap();
        let b = rt::spawn(async move {
            let (r, b) = op.await;
            (r.unwrap(), b)
        });
        rt::sleep(Duration::from_millis(2)).await.unwrap();
        c.send(b"moved".to_vec()).await.0.unwrap();
        let (n, buf) = rt::timeout(Duration::from_secs(5), b)
            .await
            .expect("the new owner was woken")
            .unwrap();
        assert_eq!((n, &buf[..]), (5, &b"moved"[..]));
        idle.abort();
    });
}
