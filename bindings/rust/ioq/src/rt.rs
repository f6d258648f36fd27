//! A small single-threaded executor driven by `ioq_poll`.
//!
//! `block_on` runs a future and the tasks spawned beside it; when no task is ready it
//! blocks in `ioq_poll`, whose completions wake the futures waiting for them. Wakers are
//! `Send + Sync`: a wake from another thread queues the task and calls `ioq_wake`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::driver::{Inner, Shared};
use crate::error::{Error, Result};
use crate::{Loop, LoopRef};

const MAIN: usize = usize::MAX;

thread_local! {
    static CURRENT: RefCell<Option<LoopRef>> = const { RefCell::new(None) };
}

/// Runs `fut` on a new loop of this thread (see [`current`]); the loop, its tasks and
/// every operation still in flight are dropped (cancelled) when `fut` returns.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let lp = Loop::new().unwrap_or_else(|e| panic!("ioq: cannot create a loop: {}", e));
    let out = lp.block_on(fut);
    drop(lp);
    out
}

/// The loop that runs the current `block_on`. Panics outside of one.
pub fn current() -> LoopRef {
    try_current().expect("ioq::rt::current() called outside of block_on")
}

/// The loop that runs the current `block_on`, if any.
pub fn try_current() -> Option<LoopRef> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Spawns a task on the current loop. Panics outside of `block_on`.
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    current().spawn(fut)
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

struct JoinState<T> {
    value: Option<T>,
    ended: bool,
    waker: Option<Waker>,
}

/// Awaits a spawned task's output; ECANCELED if the task was dropped with its loop.
/// Dropping the handle does not stop the task.
pub struct JoinHandle<T> {
    st: Rc<RefCell<JoinState<T>>>,
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut st = self.st.borrow_mut();
        if let Some(v) = st.value.take() {
            return Poll::Ready(Ok(v));
        }
        if st.ended {
            return Poll::Ready(Err(Error::CANCELED));
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T> JoinHandle<T> {
    /// Whether the task has finished (or was dropped).
    pub fn is_finished(&self) -> bool {
        let st = self.st.borrow();
        st.ended || st.value.is_some()
    }
}

/// Marks the join state ended however the task goes away (finished or dropped).
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

pub(crate) fn spawn_on<F>(inner: &Rc<Inner>, fut: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let st = Rc::new(RefCell::new(JoinState {
        value: None,
        ended: false,
        waker: None,
    }));
    let guard = EndGuard { st: st.clone() };
    let task = async move {
        let v = fut.await;
        guard.st.borrow_mut().value = Some(v);
        drop(guard);
    };
    if inner.is_closed() {
        // The loop is gone: the task never runs and its JoinHandle reports ECANCELED.
        drop(task);
        return JoinHandle { st };
    }
    let id = {
        let mut tasks = inner.tasks.borrow_mut();
        match inner.free_tasks.borrow_mut().pop() {
            Some(id) if id < tasks.len() => {
                tasks[id] = Some(Box::pin(task));
                id
            }
            _ => {
                tasks.push(Some(Box::pin(task)));
                tasks.len() - 1
            }
        }
    };
    inner.shared.schedule(id);
    JoinHandle { st }
}

fn run_task(inner: &Rc<Inner>, id: usize) {
    let task = match inner.tasks.borrow_mut().get_mut(id) {
        Some(t) => t.take(),
        None => None,
    };
    let mut task = match task {
        Some(t) => t,
        None => return, // finished already, or a stale wake-up
    };
    let waker = Waker::from(Arc::new(TaskWaker {
        id,
        shared: inner.shared.clone(),
    }));
    let mut cx = Context::from_waker(&waker);
    match task.as_mut().poll(&mut cx) {
        Poll::Pending => {
            if let Some(slot) = inner.tasks.borrow_mut().get_mut(id) {
                *slot = Some(task);
            }
        }
        Poll::Ready(()) => {
            drop(task);
            inner.free_tasks.borrow_mut().push(id);
        }
    }
}

/// Restores the previous current loop and the running flag, even on a panic.
struct RunGuard<'a> {
    inner: &'a Rc<Inner>,
    prev: Option<LoopRef>,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.inner.running.set(false);
        let prev = self.prev.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

pub(crate) fn run<F: Future>(lp: &LoopRef, fut: F) -> F::Output {
    let inner = lp.inner();
    assert!(
        !inner.running.get(),
        "ioq: block_on called inside block_on of the same loop"
    );
    inner.running.set(true);
    let prev = CURRENT.with(|c| c.borrow_mut().replace(lp.clone()));
    let _guard = RunGuard { inner, prev };

    let mut fut = Box::pin(fut);
    let main_waker = Waker::from(Arc::new(TaskWaker {
        id: MAIN,
        shared: inner.shared.clone(),
    }));
    inner.shared.schedule(MAIN);
    loop {
        let batch: Vec<usize> = {
            let mut q = inner.shared.ready.lock().unwrap_or_else(|e| e.into_inner());
            q.drain(..).collect()
        };
        let mut main_polled = false;
        for id in batch {
            if id == MAIN {
                if main_polled {
                    continue;
                }
                main_polled = true;
                let mut cx = Context::from_waker(&main_waker);
                if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                    return v;
                }
            } else {
                run_task(inner, id);
            }
        }
        let idle = inner
            .shared
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        if let Err(e) = inner.turn(if idle { -1 } else { 0 }) {
            panic!("ioq: ioq_poll failed: {}", e);
        }
    }
}
