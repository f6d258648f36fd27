//! ioq inside tokio (feature `tokio`, Unix): a driver that registers the loop's descriptor
//! (`ioq_loop_fd`) with tokio's reactor and polls the loop whenever it is readable, so that
//! ioq futures can be awaited from tokio code.
//!
//! ```no_run
//! let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
//! rt.block_on(ioq::tokio::run(async {
//!     let lp = ioq::rt::current();
//!     let listener = lp.tcp_listen("127.0.0.1:0".parse().unwrap()).unwrap();
//!     let conn = listener.accept().await.unwrap();
//!     // ioq's owned-buffer operations, or tokio's AsyncRead/AsyncWrite on `conn`,
//!     // beside tokio's own timers, channels and sockets.
//!     let (n, _buf) = conn.recv(Vec::with_capacity(4096)).await;
//!     let _ = n;
//! }));
//! ```
//!
//! [`run`] makes a loop and drives it while its future runs; [`Driver`] drives a loop you
//! made yourself, either around a future ([`Driver::run`]) or as a task of its own
//! (`tokio::task::spawn_local(driver)`). `ioq::rt::spawn` and `ioq::rt::current` work
//! inside (the driver runs the loop's tasks too), as do `tokio::task::spawn_local` tasks
//! that await ioq futures. [`run`] and [`Driver::run`] run the driver as a task of a
//! `LocalSet` of their own and poll their future inside it, so `spawn_local` works there
//! without a `LocalSet` of yours; its tasks end with the `Run` future, as the loop does.
//!
//! **Threads.** An ioq loop and its values (`LoopRef`, handles, operation futures) belong
//! to the thread that made the loop: they are not `Send`. The driver runs there, so the
//! loop is pinned to one thread whatever the runtime's flavour:
//! - current_thread runtime: `rt.block_on(ioq::tokio::run(fut))`, and
//!   `tokio::task::spawn_local` inside it for more tasks on that thread;
//! - multi_thread runtime: the same `rt.block_on(ioq::tokio::run(fut))` (or a `LocalSet`)
//!   keeps the loop on the calling thread while tokio's reactor and worker threads run as
//!   usual; tasks on the workers (`tokio::spawn`, which needs `Send` futures) hand ioq work
//!   to the loop's thread with [`crate::Remote::spawn`] and await its `Send` result. One
//!   loop per thread that needs one is the way to use several cores.
//!
//! **io_uring.** The loop's descriptor must be asked for before the loop's first
//! operation (`ioq_loop_fd`: the ring is then set up to complete work without the loop's
//! thread entering it), so make the [`Driver`] right after the loop; `run` does. Otherwise
//! [`Driver::new`] fails with EBUSY.
//!
//! **Flushing.** [`run`] makes its loop with `IOQ_LOOP_HOST_FLUSH`
//! ([`Loop::with_host_flush`]; make your own loop that way for [`Driver::new`]): on
//! io_uring the operations submitted while the driver drives the loop wait in the
//! submission queue, and the driver hands them to the kernel at the end of each of its
//! polls, in one system call (`ioq_submit`). An operation submitted outside the driver (a
//! tokio task that tokio woke) wakes the driver once, which then runs after the tasks
//! already woken and flushes for all of them; nothing sleeps with work unsubmitted. A loop
//! made without the flag submits each operation at once (one `io_uring_enter` each), as a
//! host that may sleep at any moment needs. On epoll and kqueue nothing waits to be
//! submitted, and the driver's flush is a poll of the loop (see Cost).
//!
//! **Cost.** Counted with strace on an echo server (10 connections x 1 KiB, and 100 x
//! 64 B), a round trip through [`run`] costs about 0.5 (0.15) system calls on io_uring
//! with the flag (2.6 without); tokio's own sockets need 2.1, ioq's own runtime
//! ([`crate::rt`]) 0.2 (0.06). On epoll a send usually completes inside its submit call;
//! with the flag that record wakes nobody (the driver, which is going to poll anyway,
//! takes it at its next poll, which is its flush there): 2.2 (2.2) per round trip. Each
//! wake of the future of `Runtime::block_on` writes tokio's eventfd, which is why the
//! driver is a task of a `LocalSet` rather than that future: as the future it cost 2.6
//! (2.2) on epoll and 0.9 (0.2) on io_uring.
//!
//! Not available with IOCP (Windows), which has no loop descriptor.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::unix::io::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;

use crate::{rt, Error, Loop, LoopRef};

/// Rounds of "run the future, drive the loop" in one poll before yielding to tokio.
const ROUNDS: usize = 16;

/// The loop's descriptor as tokio sees it; ioq owns and closes it.
struct LoopFd(RawFd);

impl AsRawFd for LoopFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Drives one ioq loop from the tokio runtime of this thread. As a future (spawn it with
/// `tokio::task::spawn_local`) it runs until the [`Loop`] is dropped; [`Driver::run`]
/// drives the loop while one future runs instead. Dropping the driver unregisters the
/// loop's descriptor from tokio; a new driver may then take over.
pub struct Driver {
    lp: LoopRef,
    _driven: rt::Driven,
    /// A poll of the loop is owed (see `drive`).
    owed: Cell<bool>,
}

impl Driver {
    /// Registers `lp`'s descriptor with the reactor of the current tokio runtime. Call it
    /// on the loop's thread, inside the runtime (`Runtime::block_on`, a task, or
    /// `Runtime::enter`), before the loop's first operation (see io_uring above).
    ///
    /// Errors: no tokio runtime on this thread; EBUSY when another driver drives the loop,
    /// or on io_uring when operations were submitted before; ENOTSUP where the backend has
    /// no descriptor (IOCP); EBADHANDLE when the loop is gone.
    ///
    /// # Panics
    /// As every tokio I/O type, when the runtime was built without `enable_io`.
    pub fn new(lp: &LoopRef) -> io::Result<Driver> {
        if ::tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::new(
                io::ErrorKind::Other,
                "ioq::tokio::Driver::new: no tokio runtime on this thread (call it inside \
                 Runtime::block_on, a task, or Runtime::enter)",
            ));
        }
        let inner = lp.inner();
        if inner.foreign.borrow().is_some() {
            return Err(driver_error(Error::BUSY, "another driver drives this loop"));
        }
        let fd = lp.loop_fd().map_err(|e| {
            driver_error(
                e,
                "ioq_loop_fd failed (on io_uring: make the driver before the loop's first \
                 operation)",
            )
        })?;
        let afd = AsyncFd::with_interest(LoopFd(fd as RawFd), Interest::READABLE)?;
        *inner.foreign.borrow_mut() = Some(Box::new(afd));
        inner.host_flush.set(inner.flush_flag.get());
        inner.poll_flush.set(
            inner.flush_flag.get() && lp.caps() & ioq_sys::IOQ_CAP_BATCHED_SUBMIT == 0,
        );
        Ok(Driver {
            lp: lp.clone(),
            _driven: rt::set_driven(lp),
            owed: Cell::new(false),
        })
    }

    /// The loop this driver drives.
    pub fn loop_ref(&self) -> &LoopRef {
        &self.lp
    }

    /// A future that runs `fut` and drives the loop while it does; its output is `fut`'s.
    pub fn run<F: Future>(self, fut: F) -> Run<F> {
        Run {
            set: None,
            lp: Some(self.lp.clone()),
            driver: Some(self),
            fut,
            _owned: None,
        }
    }

    /// Runs the loop's ready tasks, then polls the loop if its descriptor is readable or
    /// a poll is owed. Leaves either the descriptor's readiness registered with `cx`, or
    /// the task woken to come back.
    ///
    /// tokio's reactor is edge-triggered: readiness not consumed now is not reported
    /// again. ioq_poll may hand out records without asking the kernel (those made at
    /// submission, every other time), so only a poll that returns nothing (and did not
    /// return early for an ioq_wake) has seen the kernel's queue empty. After one that
    /// returned records another poll is owed; it is made at the next round, after the
    /// tasks those records woke have run, so that under load it also takes what they
    /// submit instead of costing a system call of its own.
    fn drive(&self, cx: &mut Context<'_>) {
        let inner = self.lp.inner();
        inner.shared.set_driver(Some(cx.waker()));
        if inner.host_flush.get() {
            let mut w = inner.flush_waker.borrow_mut();
            match &*w {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        rt::run_ready(inner);
        for _ in 0..4 {
            let ready = {
                let f = inner.foreign.borrow();
                let afd = match f.as_ref().and_then(|b| b.downcast_ref::<AsyncFd<LoopFd>>()) {
                    Some(a) => a,
                    None => return, // the loop is gone
                };
                match afd.poll_read_ready(cx) {
                    // Cleared before polling the loop: whatever becomes ready while (or
                    // after) it polls raises readiness again.
                    Poll::Ready(Ok(mut g)) => {
                        g.clear_ready();
                        true
                    }
                    // The reactor is gone: the runtime is shutting down.
                    Poll::Ready(Err(_)) => return,
                    Poll::Pending => false,
                }
            };
            // On a poll-flushed loop, submissions since the last poll may have made records
            // that nothing announces: poll for them.
            let flush = inner.poll_flush.get() && inner.is_unflushed();
            if !ready && !self.owed.get() && !flush {
                return; // readiness registered
            }
            let n = inner.turn(0).unwrap_or(0);
            let woken = inner.shared.woken.swap(false, Ordering::SeqCst);
            self.owed.set(n > 0 || woken);
            if self.owed.get() {
                inner.flush_woken.set(true);
                cx.waker().wake_by_ref();
                return;
            }
            if !ready {
                return; // nothing owed any more, readiness registered
            }
            // Readiness was consumed and the kernel's queue seen empty: register again.
        }
        inner.flush_woken.set(true);
        cx.waker().wake_by_ref();
    }

    /// Marks the driver as running for as long as the returned guard lives; the guard
    /// flushes what was submitted meanwhile when it goes (host-flushed loops).
    fn running(&self) -> Running<'_> {
        let inner = self.lp.inner();
        inner.in_drive.set(true);
        inner.flush_woken.set(false);
        Running { inner }
    }
}

/// See [`Driver::running`]: the end of a driver's poll is the end of its turn, where the
/// submissions of the turn go to the kernel.
struct Running<'a> {
    inner: &'a crate::driver::Inner,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.inner.in_drive.set(false);
        if !self.inner.poll_flush.get() {
            self.inner.flush();
        } else if self.inner.is_unflushed() {
            // The flush is the driver's next poll: come back for it (once).
            self.inner.wake_flusher();
        }
    }
}

fn driver_error(e: Error, what: &str) -> io::Error {
    io::Error::new(
        io::Error::from(e).kind(),
        format!("ioq::tokio::Driver: {}: {}", what, e),
    )
}

impl Drop for Driver {
    fn drop(&mut self) {
        let inner = self.lp.inner();
        inner.shared.set_driver(None);
        // Whoever polls the loop next flushes it (ioq_poll does): nothing waits for us.
        inner.flush();
        inner.host_flush.set(false);
        inner.poll_flush.set(false);
        inner.flush_waker.borrow_mut().take();
        let f = inner.foreign.borrow_mut().take();
        drop(f);
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let _enter = rt::enter(&this.lp);
        let _running = this.running();
        for _ in 0..ROUNDS {
            if this.lp.inner().is_closed() {
                return Poll::Ready(());
            }
            this.drive(cx);
            // Again at once only for the loop's own tasks that completions just woke.
            if !this.lp.inner().shared.has_ready() {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ioq::tokio::Driver({})", self.lp.backend())
    }
}

/// Runs `fut` with a new ioq loop driven by the tokio runtime that polls it; the loop (and
/// what is still in flight on it) is dropped when `fut` returns. `ioq::rt::current()` is
/// that loop. The driver is made at the first poll, so the future may be made outside the
/// runtime: `rt.block_on(ioq::tokio::run(fut))`.
///
/// # Panics
/// When the loop cannot be created, or at the first poll outside a tokio runtime (or in
/// one without `enable_io`).
pub fn run<F: Future>(fut: F) -> Run<F> {
    let lp = Loop::with_host_flush(crate::Backend::Auto)
        .unwrap_or_else(|e| panic!("ioq: cannot create a loop: {}", e));
    Run {
        set: None,
        driver: None,
        fut,
        lp: Some(lp.handle()),
        _owned: Some(lp),
    }
}

/// Future of [`run`] and [`Driver::run`].
///
/// It runs the driver as a task of a `LocalSet` of its own, polled with `fut`, and polls
/// `fut` inside that set: `tokio::task::spawn_local` there spawns onto it (no `LocalSet`
/// of yours is needed), and those tasks end with the `Run` (as the loop does). A driver
/// that is the future of `Runtime::block_on` would cost tokio an eventfd write at each of
/// its wakes; as a task it wakes itself, and the tasks its completions wake, for free.
#[must_use = "futures do nothing unless awaited"]
pub struct Run<F> {
    // Dropped in this order: the driver (in `set`) and the tasks before the loop.
    set: Option<::tokio::task::LocalSet>,
    driver: Option<Driver>,
    fut: F,
    _owned: Option<Loop>,
    lp: Option<LoopRef>,
}

impl<F: Future> Future for Run<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // `fut` and `set` are structurally pinned (never moved once polled); the other
        // fields are never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if this.set.is_none() {
            let driver = match this.driver.take() {
                Some(d) => d,
                None => {
                    let lp = this.lp.as_ref().expect("a loop to drive");
                    Driver::new(lp).unwrap_or_else(|e| panic!("ioq::tokio::run: {}", e))
                }
            };
            let set = ::tokio::task::LocalSet::new();
            set.spawn_local(driver);
            this.set = Some(set);
        }
        let set = this.set.as_mut().expect("set made above");
        let _local = set.enter();
        {
            let _enter = rt::enter(this.lp.as_ref().expect("the driven loop"));
            if let Poll::Ready(v) = unsafe { Pin::new_unchecked(&mut this.fut) }.poll(cx) {
                return Poll::Ready(v);
            }
        }
        // The driver and the local tasks. The set ends only when its driver does (the
        // loop is gone): `fut` still decides when this ends.
        let _ = unsafe { Pin::new_unchecked(set) }.poll(cx);
        Poll::Pending
    }
}
