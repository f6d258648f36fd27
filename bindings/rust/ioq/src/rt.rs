//! A small single-threaded executor driven by `ioq_poll`, and the helpers that go with it.
//!
//! `block_on` runs a future and the tasks spawned beside it; when no task is ready it
//! blocks in `ioq_poll`, whose completions wake the futures waiting for them. Wakers are
//! `Send + Sync`: a wake from another thread queues the task and calls `ioq_wake`.
//!
//! The rules are tokio's: a task that panics ends with a [`JoinError`] and the runtime goes
//! on; [`JoinHandle::abort`] drops a task (cancelling its operations); a `block_on` inside
//! a running `block_on` (or inside a future driven by [`crate::tokio`]) panics, because it
//! would block the thread that has to run the outer one. [`timeout`] and [`select`] race
//! futures; the loser is dropped, which cancels its operations.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::driver::{Inner, Shared, TaskEntry};
use crate::op::Op;
use crate::{Loop, LoopRef};

const MAIN: usize = usize::MAX;

thread_local! {
    /// The loop of the `block_on` (or tokio driver poll) running on this thread.
    static CURRENT: RefCell<Option<LoopRef>> = const { RefCell::new(None) };
    /// The loop that a tokio driver on this thread drives, while it lives: what
    /// `current()` gives in tokio tasks of that thread.
    static DRIVEN: RefCell<Option<LoopRef>> = const { RefCell::new(None) };
    /// Inside a `block_on` or a driver's poll: a nested `block_on` would deadlock.
    static ENTERED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `fut` on a new loop of this thread (see [`current`]); the loop, its tasks and
/// every operation still in flight are dropped (cancelled) when `fut` returns.
///
/// # Panics
/// When the loop cannot be created, and when called from inside a running `block_on` or a
/// future driven by the tokio driver on this thread (await the future there instead).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    check_not_entered();
    let lp = Loop::new().unwrap_or_else(|e| panic!("ioq: cannot create a loop: {}", e));
    let out = lp.block_on(fut);
    drop(lp);
    out
}

/// The loop that runs the current `block_on`, or that the tokio driver of this thread
/// drives. Panics outside of both.
pub fn current() -> LoopRef {
    try_current().expect("ioq::rt::current() called outside of block_on and of a tokio driver")
}

/// The loop that runs the current `block_on` (or the tokio driver's loop), if any.
pub fn try_current() -> Option<LoopRef> {
    CURRENT
        .with(|c| c.borrow().clone())
        .or_else(|| DRIVEN.with(|c| c.borrow().clone()))
}

/// Spawns a task on the current loop. Panics outside of `block_on` and of a tokio driver.
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    current().spawn(fut)
}

/// Completes after `d` on the current loop (never earlier).
pub fn sleep(d: Duration) -> Op<crate::Result<()>> {
    current().sleep(d)
}

/// Completes when the current loop's [`now`](crate::Loop::now) reaches `deadline`.
pub fn sleep_until(deadline: Duration) -> Op<crate::Result<()>> {
    current().sleep_until(deadline)
}

/// Runs `fut` for at most `d` (an ioq timer of the current loop): its output, or
/// [`Elapsed`], in which case `fut` is dropped and its operations are cancelled.
pub fn timeout<F: Future>(d: Duration, fut: F) -> Timeout<F> {
    current().timeout(d, fut)
}

/// Runs both futures and gives the output of the first that finishes; the other one is
/// dropped (its operations are cancelled, their buffers go back to the loop). `a` is
/// polled first, so it wins a tie.
pub fn select<A: Future, B: Future>(a: A, b: B) -> Select<A, B> {
    Select {
        a: Some(a),
        b: Some(b),
    }
}

fn check_not_entered() {
    if ENTERED.with(|e| e.get()) {
        panic!(
            "ioq: block_on called inside a running block_on (or a future driven by \
             ioq::tokio) on this thread; it would block the loop that runs the caller: \
             .await the future, or spawn it"
        );
    }
}

/// Marks this thread as inside an executor's poll with `lp` current, until dropped.
pub(crate) struct Enter {
    prev: Option<LoopRef>,
    was_entered: bool,
}

pub(crate) fn enter(lp: &LoopRef) -> Enter {
    let was_entered = ENTERED.with(|e| e.replace(true));
    let prev = CURRENT.with(|c| c.borrow_mut().replace(lp.clone()));
    Enter { prev, was_entered }
}

impl Drop for Enter {
    fn drop(&mut self) {
        ENTERED.with(|e| e.set(self.was_entered));
        let prev = self.prev.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

/// Makes `lp` what `current()` gives on this thread outside of polls (tokio tasks), as long
/// as the returned value lives.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) struct Driven {
    lp: LoopRef,
    prev: Option<LoopRef>,
}

#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) fn set_driven(lp: &LoopRef) -> Driven {
    let prev = DRIVEN.with(|c| c.borrow_mut().replace(lp.clone()));
    Driven {
        lp: lp.clone(),
        prev,
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        let prev = self.prev.take();
        DRIVEN.with(|c| {
            let mut c = c.borrow_mut();
            if c.as_ref()
                .map_or(false, |l| Rc::ptr_eq(l.inner(), self.lp.inner()))
            {
                *c = prev;
            }
        });
    }
}

struct TaskWaker {
    id: usize,
    shared: Arc<Shared>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.shared.schedule(self.id);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.shared.schedule(self.id);
    }
}

/// Why a task did not give its output: it panicked, or it was aborted or dropped with its
/// loop. `Send + Sync`, like tokio's.
pub struct JoinError {
    repr: Repr,
    /// The panic's message, when its payload was text (taken at once: the payload itself
    /// is only ever reached by value).
    msg: Option<String>,
}

enum Repr {
    Cancelled,
    Panic(Payload),
}

/// A panic payload is `Send` but not `Sync`. JoinError never lends it out (`into_panic`
/// moves it), so sharing a JoinError between threads shares no access to it.
struct Payload(Box<dyn Any + Send + 'static>);

unsafe impl Sync for Payload {}

impl JoinError {
    pub(crate) fn cancelled() -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
            msg: None,
        }
    }

    pub(crate) fn panic(p: Box<dyn Any + Send + 'static>) -> JoinError {
        let msg = p
            .downcast_ref::<&'static str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned());
        JoinError {
            repr: Repr::Panic(Payload(p)),
            msg,
        }
    }

    /// The task was aborted, or dropped with its loop, before it finished.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic's payload (for `std::panic::resume_unwind`). Panics if the task was
    /// cancelled instead.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .expect("ioq::rt::JoinError::into_panic() on a cancelled task")
    }

    /// The panic's payload, or the error itself when the task was cancelled.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.0),
            Repr::Cancelled => Err(self),
        }
    }

    fn message(&self) -> Option<&str> {
        self.msg.as_deref()
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.message()) {
            (Repr::Cancelled, _) => f.write_str("task was cancelled"),
            (Repr::Panic(_), Some(m)) => write!(f, "task panicked: {}", m),
            (Repr::Panic(_), None) => f.write_str("task panicked"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.message()) {
            (Repr::Cancelled, _) => f.write_str("JoinError::Cancelled"),
            (Repr::Panic(_), Some(m)) => write!(f, "JoinError::Panic({:?})", m),
            (Repr::Panic(_), None) => f.write_str("JoinError::Panic(..)"),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> std::io::Error {
        let kind = if e.is_cancelled() {
            std::io::ErrorKind::Interrupted
        } else {
            std::io::ErrorKind::Other
        };
        std::io::Error::new(kind, e.to_string())
    }
}

type Outcome<T> = Result<T, Box<dyn Any + Send + 'static>>;

struct JoinState<T> {
    out: Option<Outcome<T>>,
    ended: bool,
    waker: Option<Waker>,
}

/// Awaits a spawned task: its output, or a [`JoinError`] if it panicked or was aborted
/// (or dropped with its loop). Dropping the handle does not stop the task; `abort` does.
pub struct JoinHandle<T> {
    st: Rc<RefCell<JoinState<T>>>,
    abort: Rc<Cell<bool>>,
    id: usize,
    shared: Arc<Shared>,
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        let mut st = self.st.borrow_mut();
        match st.out.take() {
            Some(Ok(v)) => return Poll::Ready(Ok(v)),
            Some(Err(p)) => return Poll::Ready(Err(JoinError::panic(p))),
            None => {}
        }
        if st.ended {
            return Poll::Ready(Err(JoinError::cancelled()));
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T> JoinHandle<T> {
    /// Whether the task has finished (or panicked, or was dropped).
    pub fn is_finished(&self) -> bool {
        let st = self.st.borrow();
        st.ended || st.out.is_some()
    }

    /// Stops the task: it is dropped the next time the loop runs its tasks (at once if it
    /// is the caller), which cancels the operations it waits for, and its handle gives
    /// `JoinError::is_cancelled()`. No effect on a finished task.
    pub fn abort(&self) {
        if self.is_finished() || self.abort.get() {
            return;
        }
        self.abort.set(true);
        self.shared.schedule(self.id);
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinHandle(task {})", self.id)
    }
}

/// Marks the join state ended however the task goes away (finished, panicked, dropped).
struct EndGuard<T> {
    st: Rc<RefCell<JoinState<T>>>,
}

impl<T> Drop for EndGuard<T> {
    fn drop(&mut self) {
        let w = {
            let mut st = self.st.borrow_mut();
            st.ended = true;
            st.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

/// A spawned task: polls the future inside `catch_unwind`; once it ends (or panics) drops
/// it, then gives its outcome to the JoinHandle. Written by hand rather than as an
/// `async` block around `CatchUnwind`: one poll level less per wake-up of the task.
struct TaskFut<F: Future> {
    fut: Option<F>,
    guard: Option<EndGuard<F::Output>>,
}

impl<F: Future> Future for TaskFut<F> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Safety: `fut` is structurally pinned: it is polled in place and dropped in place
        // (set to None), never moved out; `guard` is never pinned (it is Unpin anyway).
        let this = unsafe { self.get_unchecked_mut() };
        let fut = match this.fut.as_mut() {
            Some(f) => unsafe { Pin::new_unchecked(f) },
            None => return Poll::Ready(()),
        };
        let out = match panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(v)) => Ok(v),
            Err(p) => Err(p),
        };
        // The task's own values go first, as when an async block returns.
        this.fut = None;
        if let Some(guard) = this.guard.take() {
            guard.st.borrow_mut().out = Some(out);
            drop(guard);
        }
        Poll::Ready(())
    }
}

/// Polls a future inside `catch_unwind`: a panic becomes its output.
struct CatchUnwind<F> {
    fut: F,
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Outcome<F::Output>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Structural pinning of the only field; nothing moves it.
        let fut = unsafe { self.map_unchecked_mut(|s| &mut s.fut) };
        match panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(p) => Poll::Ready(Err(p)),
        }
    }
}

pub(crate) fn spawn_on<F>(inner: &Rc<Inner>, fut: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let st = Rc::new(RefCell::new(JoinState {
        out: None,
        ended: false,
        waker: None,
    }));
    let abort = Rc::new(Cell::new(false));
    let task = TaskFut {
        fut: Some(fut),
        guard: Some(EndGuard { st: st.clone() }),
    };
    let shared = inner.shared.clone();
    if inner.is_closed() {
        // The loop is gone: the task never runs and its JoinHandle reports cancellation.
        drop(task);
        return JoinHandle {
            st,
            abort,
            id: 0,
            shared,
        };
    }
    let entry = TaskEntry {
        fut: Box::pin(task),
        abort: abort.clone(),
        waker: None,
    };
    let id = {
        let mut tasks = inner.tasks.borrow_mut();
        match inner.free_tasks.borrow_mut().pop() {
            Some(id) if id < tasks.len() => {
                tasks[id] = Some(entry);
                id
            }
            _ => {
                tasks.push(Some(entry));
                tasks.len() - 1
            }
        }
    };
    inner.shared.schedule(id);
    JoinHandle {
        st,
        abort,
        id,
        shared,
    }
}

/// Polls task `id` once (or drops it if it was aborted).
#[inline]
pub(crate) fn run_task(inner: &Rc<Inner>, id: usize) {
    let entry = match inner.tasks.borrow_mut().get_mut(id) {
        Some(t) => t.take(),
        None => None,
    };
    let mut entry = match entry {
        Some(t) => t,
        None => return, // finished already, or a stale wake-up
    };
    let done = if entry.abort.get() {
        true
    } else {
        let waker = entry.waker.get_or_insert_with(|| {
            Waker::from(Arc::new(TaskWaker {
                id,
                shared: inner.shared.clone(),
            }))
        });
        let mut cx = Context::from_waker(waker);
        let _polling = inner.polling(id, waker);
        // The task's own panics are caught inside it (CatchUnwind); this is only reached
        // by a panic while dropping its future.
        entry.fut.as_mut().poll(&mut cx).is_ready() || entry.abort.get()
    };
    if done {
        drop(entry);
        inner.free_tasks.borrow_mut().push(id);
    } else if let Some(slot) = inner.tasks.borrow_mut().get_mut(id) {
        // The slot stayed empty while the task ran (its id is not free, so no spawn took
        // it): nothing to drop there.
        debug_assert!(slot.is_none());
        std::mem::forget(std::mem::replace(slot, Some(entry)));
    }
}

/// Runs the spawns sent from other threads and one batch of ready tasks. Returns how many
/// things ran.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) fn run_ready(inner: &Rc<Inner>) -> usize {
    let mut batch = std::mem::take(&mut *inner.batch.borrow_mut());
    let remote = inner.shared.take(&mut batch);
    let n = batch.len() + remote.len();
    for f in remote {
        f();
    }
    for &id in batch.iter() {
        if id != MAIN {
            run_task(inner, id);
        }
    }
    *inner.batch.borrow_mut() = batch;
    n
}

pub(crate) fn run<F: Future>(lp: &LoopRef, fut: F) -> F::Output {
    check_not_entered();
    let inner = lp.inner();
    let _enter = enter(lp);

    let mut fut = Box::pin(fut);
    let main_waker = Waker::from(Arc::new(TaskWaker {
        id: MAIN,
        shared: inner.shared.clone(),
    }));
    inner.shared.schedule(MAIN);
    let mut batch = Vec::new();
    loop {
        let remote = inner.shared.take(&mut batch);
        if !remote.is_empty() {
            remote.into_iter().for_each(|f| f());
        }
        let mut main_polled = false;
        for &id in batch.iter() {
            if id == MAIN {
                if main_polled {
                    continue;
                }
                main_polled = true;
                let mut cx = Context::from_waker(&main_waker);
                let _polling = inner.polling(MAIN, &main_waker);
                if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                    return v;
                }
            } else {
                run_task(inner, id);
            }
        }
        let idle = !inner.shared.has_ready();
        if let Err(e) = inner.turn(if idle { -1 } else { 0 }) {
            panic!("ioq: ioq_poll failed: {}", e);
        }
    }
}

/// A spawn made through [`crate::Remote::spawn`]: its output, sent back to any thread.
struct RemoteState<T> {
    out: Option<Result<T, JoinError>>,
    waker: Option<Waker>,
    /// The task on the loop's thread, to wake when the handle aborts it.
    task: Option<Waker>,
    aborted: bool,
    sent: bool,
}

/// The `Send` handle of a [`crate::Remote::spawn`]: awaitable from any thread and any
/// runtime. Gives the task's output, or a [`JoinError`] if it panicked, was aborted, or
/// the loop went away first.
pub struct RemoteJoinHandle<T> {
    st: Arc<Mutex<RemoteState<T>>>,
}

impl<T> Future for RemoteJoinHandle<T> {
    type Output = Result<T, JoinError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.st.lock().unwrap_or_else(|e| e.into_inner());
        match st.out.take() {
            Some(r) => Poll::Ready(r),
            None => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> RemoteJoinHandle<T> {
    /// Stops the task on the loop's thread (or keeps it from starting); the handle then
    /// gives `JoinError::is_cancelled()` unless the task had already finished.
    pub fn abort(&self) {
        let task = {
            let mut st = self.st.lock().unwrap_or_else(|e| e.into_inner());
            st.aborted = true;
            st.task.take()
        };
        if let Some(w) = task {
            w.wake();
        }
    }

    /// Whether the task has ended (its output or error is there, or was taken).
    pub fn is_finished(&self) -> bool {
        self.st.lock().unwrap_or_else(|e| e.into_inner()).sent
    }
}

impl<T> fmt::Debug for RemoteJoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RemoteJoinHandle")
    }
}

/// Delivers the outcome once, however the remote task ends (a dropped spawn or task
/// delivers "cancelled").
struct RemoteSender<T> {
    st: Arc<Mutex<RemoteState<T>>>,
}

impl<T> RemoteSender<T> {
    fn send(&self, r: Result<T, JoinError>) {
        let w = {
            let mut st = self.st.lock().unwrap_or_else(|e| e.into_inner());
            if st.sent {
                return;
            }
            st.sent = true;
            st.out = Some(r);
            st.task = None;
            st.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl<T> Drop for RemoteSender<T> {
    fn drop(&mut self) {
        self.send(Err(JoinError::cancelled()));
    }
}

/// Ready once the remote handle aborted the task.
struct AbortSignal<T> {
    st: Arc<Mutex<RemoteState<T>>>,
}

impl<T> Future for AbortSignal<T> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.st.lock().unwrap_or_else(|e| e.into_inner());
        if st.aborted {
            return Poll::Ready(());
        }
        st.task = Some(cx.waker().clone());
        Poll::Pending
    }
}

pub(crate) fn remote_spawn<F, Fut>(shared: &Arc<Shared>, f: F) -> RemoteJoinHandle<Fut::Output>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let st = Arc::new(Mutex::new(RemoteState {
        out: None,
        waker: None,
        task: None,
        aborted: false,
        sent: false,
    }));
    let sender = RemoteSender { st: st.clone() };
    let start = move || {
        if sender.st.lock().unwrap_or_else(|e| e.into_inner()).aborted {
            return; // dropping the sender reports the cancellation
        }
        let abort = AbortSignal {
            st: sender.st.clone(),
        };
        let task = async move {
            let fut = CatchUnwind { fut: f() };
            match select(fut, abort).await {
                Either::Left(Ok(v)) => sender.send(Ok(v)),
                Either::Left(Err(p)) => sender.send(Err(JoinError::panic(p))),
                Either::Right(()) => sender.send(Err(JoinError::cancelled())),
            }
        };
        // On the loop's thread, inside its executor: the loop is current.
        match try_current() {
            Some(lp) => {
                lp.spawn(task);
            }
            None => drop(task),
        }
    };
    let mut q = shared.lock();
    if q.closed {
        drop(q);
        drop(start); // the loop is gone: the handle reports cancellation
    } else {
        q.remote.push_back(Box::new(start));
        shared.queued.store(true, std::sync::atomic::Ordering::Release);
        shared.notify(q, true);
    }
    RemoteJoinHandle { st }
}

/// The error of [`timeout`]: the time ran out first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> std::io::Error {
        std::io::ErrorKind::TimedOut.into()
    }
}

impl From<Elapsed> for crate::Error {
    fn from(_: Elapsed) -> crate::Error {
        crate::Error::TIMEDOUT
    }
}

/// Future of [`timeout`] and [`LoopRef::timeout`].
#[must_use = "futures do nothing unless awaited"]
pub struct Timeout<F> {
    fut: F,
    timer: Op<crate::Result<()>>,
    done: bool,
}

impl<F> Timeout<F> {
    pub(crate) fn new(fut: F, timer: Op<crate::Result<()>>) -> Timeout<F> {
        Timeout {
            fut,
            timer,
            done: false,
        }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `fut` is structurally pinned; `timer` and `done` are Unpin and never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        assert!(!this.done, "ioq::rt::Timeout polled after it completed");
        if let Poll::Ready(v) = unsafe { Pin::new_unchecked(&mut this.fut) }.poll(cx) {
            this.done = true;
            return Poll::Ready(Ok(v));
        }
        // The timer ends on expiry; with an error only when the loop is gone (or could not
        // start a timer), and then `fut`, which needs that loop, cannot finish either.
        match Pin::new(&mut this.timer).poll(cx) {
            Poll::Ready(_) => {
                this.done = true;
                Poll::Ready(Err(Elapsed(())))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The output of [`select`]: which future finished, with its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Future of [`select`].
#[must_use = "futures do nothing unless awaited"]
pub struct Select<A, B> {
    a: Option<A>,
    b: Option<B>,
}

impl<A: Future, B: Future> Future for Select<A, B> {
    type Output = Either<A::Output, B::Output>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Both futures are structurally pinned: they are only polled in place and dropped
        // in place (setting the Option to None runs their destructor where they are).
        let this = unsafe { self.get_unchecked_mut() };
        let a = this
            .a
            .as_mut()
            .expect("ioq::rt::Select polled after it completed");
        if let Poll::Ready(v) = unsafe { Pin::new_unchecked(a) }.poll(cx) {
            this.a = None;
            this.b = None;
            return Poll::Ready(Either::Left(v));
        }
        if let Some(b) = this.b.as_mut() {
            if let Poll::Ready(v) = unsafe { Pin::new_unchecked(b) }.poll(cx) {
                this.a = None;
                this.b = None;
                return Poll::Ready(Either::Right(v));
            }
        }
        Poll::Pending
    }
}
