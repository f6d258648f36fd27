//! The loop's bookkeeping: a slab of in-flight operations keyed by internal tokens.
//!
//! Every buffer, address out-parameter and path an operation uses lives in its slot here,
//! never in the future that waits for it. A future holds only its token, so forgetting a
//! future cannot free memory the kernel still writes; the slot lets go of the buffer only
//! once the operation's final completion has been polled, or after `ioq_loop_free`.

use std::any::Any;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use ioq_sys as sys;

use crate::error::{Error, Result};

/// Completions of internal housekeeping (closes of dropped handles, cancels of dropped
/// futures) carry this token and are dropped on arrival. Real tokens have a generation in
/// their upper half, which starts at 1, so they are never 0.
pub(crate) const IGNORE: u64 = 0;

/// Completions taken by one ioq_poll.
pub(crate) const TURN_MAX: usize = 64;

/// What an operation's slot holds for it until the final completion: its buffer, address
/// out-parameter, path or pool.
pub(crate) enum Keep {
    /// A `Vec<u8>`, kept as it is: its bytes live on the heap and do not move with it, so
    /// the common buffer costs no box of its own.
    Bytes(Vec<u8>),
    /// Anything else, boxed so that its address stays put.
    Boxed(Box<dyn Any>),
}

/// Whether `B` is `Vec<u8>`: a comparison of two constants once monomorphized, so the
/// common buffer's path has no dynamic downcast in it.
#[inline(always)]
fn is_bytes<B: 'static>() -> bool {
    std::any::TypeId::of::<B>() == std::any::TypeId::of::<Vec<u8>>()
}

impl Keep {
    pub(crate) fn boxed<T: 'static>(v: T) -> Keep {
        Keep::Boxed(Box::new(v))
    }

    /// Keeps a buffer (see `Bytes`).
    #[inline]
    pub(crate) fn buf<B: 'static>(b: B) -> Keep {
        if is_bytes::<B>() {
            // Safety: B is Vec<u8> (same type id): the value is moved, not copied twice.
            let b = std::mem::ManuallyDrop::new(b);
            return Keep::Bytes(unsafe { std::ptr::read(&*b as *const B as *const Vec<u8>) });
        }
        Keep::Boxed(Box::new(b))
    }

    /// The kept value, where it stays until the slot lets go of it.
    #[inline(always)]
    pub(crate) fn get_mut<B: 'static>(&mut self) -> &mut B {
        match self {
            // Safety: B is Vec<u8>.
            Keep::Bytes(v) if is_bytes::<B>() => {
                Some(unsafe { &mut *(v as *mut Vec<u8> as *mut B) })
            }
            Keep::Bytes(_) => None,
            Keep::Boxed(b) => b.downcast_mut::<B>(),
        }
        .expect("kept value of another type")
    }

    /// Gives the kept value back.
    #[inline(always)]
    pub(crate) fn take<B: 'static>(self) -> B {
        match self {
            Keep::Bytes(v) if is_bytes::<B>() => {
                // Safety: B is Vec<u8>: the value is moved out once.
                let v = std::mem::ManuallyDrop::new(v);
                Some(unsafe { std::ptr::read(&*v as *const Vec<u8> as *const B) })
            }
            Keep::Bytes(_) => None,
            Keep::Boxed(b) => b.downcast::<B>().ok().map(|b| *b),
        }
        .expect("kept value of another type")
    }
}
pub(crate) type Task = Pin<Box<dyn Future<Output = ()>>>;
/// A spawn sent from another thread: run on the loop's thread, it spawns the task there.
pub(crate) type RemoteFn = Box<dyn FnOnce() + Send>;

/// A spawned task, its abort flag (shared with its JoinHandle) and its waker (made once).
pub(crate) struct TaskEntry {
    pub(crate) fut: Task,
    pub(crate) abort: Rc<Cell<bool>>,
    pub(crate) waker: Option<Waker>,
}

thread_local! {
    static MARK: u8 = const { 0 };
}

/// This thread, cheaply: the address of a thread-local, unique among the threads alive
/// (a loop's own thread outlives the loop, so it is never reused while the loop lives).
fn this_thread() -> usize {
    MARK.with(|m| m as *const u8 as usize)
}

/// What other threads hand to the loop's thread: tasks to poll, spawns to start.
#[derive(Default)]
pub(crate) struct Queue {
    pub(crate) ready: VecDeque<usize>,
    pub(crate) remote: VecDeque<RemoteFn>,
    /// The task of a foreign runtime that drives this loop (the tokio driver): woken,
    /// instead of the loop, when work arrives.
    pub(crate) driver: Option<Waker>,
    /// The driver has been woken and has not taken the queue since.
    pub(crate) notified: bool,
    /// The loop is gone: remote spawns are refused (dropped, so their handles learn it).
    pub(crate) closed: bool,
}

/// The part that other threads may touch: the loop pointer for ioq_post/ioq_wake, guarded
/// so that it is never used after ioq_loop_free, and the executor's queues.
pub(crate) struct Shared {
    pub(crate) raw: Mutex<usize>,
    pub(crate) queue: Mutex<Queue>,
    pub(crate) thread: usize,
    /// ioq_wake was called: the next ioq_poll may return at once, without looking at the
    /// kernel's queue (the tokio driver then polls once more).
    pub(crate) woken: AtomicBool,
    /// Tasks woken on the loop's own thread while no driver is registered: the common
    /// wake-up of the executor, made without the lock. Only the thread that made the loop
    /// touches it (every access checks `this_thread`), and only while the loop is open.
    pub(crate) local: UnsafeCell<Vec<usize>>,
    /// A driver is registered (`set_driver`): wake-ups take the locked queue, which
    /// notifies it.
    pub(crate) has_driver: AtomicBool,
    /// The loop is closed: wake-ups go to the locked queue (which drops them).
    pub(crate) closed: AtomicBool,
    /// The locked queue may hold ready tasks or spawns: set under the lock by whoever
    /// adds to it, cleared under the lock by `take`. The executor's turns look at this
    /// instead of taking the lock when there is nothing there (a push it misses is
    /// followed by that pusher's notification: an ioq_wake or the driver's wake-up).
    pub(crate) queued: AtomicBool,
}

// `local` is reached only from the loop's thread (see there); the rest is Sync.
unsafe impl Sync for Shared {}

impl Shared {
    pub(crate) fn wake_loop(&self) {
        let raw = self.raw.lock().unwrap_or_else(|e| e.into_inner());
        if *raw != 0 {
            self.woken.store(true, Ordering::SeqCst);
            unsafe { sys::ioq_wake(*raw as *mut sys::ioq_loop) };
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lock-free list of wake-ups, when the caller is on the loop's thread.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    fn local(&self) -> Option<&mut Vec<usize>> {
        if this_thread() == self.thread {
            // Safety: only this thread ever reaches `local`, and never twice at once (no
            // caller holds the reference across a call that could come back here).
            Some(unsafe { &mut *self.local.get() })
        } else {
            None
        }
    }

    /// `schedule` from the loop's own thread, without asking which thread this is.
    ///
    /// # Safety
    /// Only on the thread that made the loop (`thread`).
    #[inline]
    pub(crate) unsafe fn schedule_on_loop_thread(&self, id: usize) {
        debug_assert_eq!(this_thread(), self.thread);
        if !self.has_driver.load(Ordering::Relaxed) && !self.closed.load(Ordering::Relaxed) {
            // Safety: on the loop's thread (the caller's promise), the only one that
            // reaches `local`; nothing else holds a reference to it across this push.
            (*self.local.get()).push(id);
            return;
        }
        self.schedule(id);
    }

    pub(crate) fn schedule(&self, id: usize) {
        if !self.has_driver.load(Ordering::Relaxed) && !self.closed.load(Ordering::Relaxed) {
            if let Some(l) = self.local() {
                // The executor looks at its queue before it polls: no notification.
                l.push(id);
                return;
            }
        }
        let mut q = self.lock();
        q.ready.push_back(id);
        self.queued.store(true, Ordering::Release);
        self.notify(q, false);
    }

    /// Tells whoever runs the loop that the queue has work. A driver task is woken (once
    /// until it takes the queue); a loop blocked in ioq_poll is woken from other threads,
    /// while on the loop's own thread the executor looks at the queue before it polls.
    pub(crate) fn notify(&self, mut q: MutexGuard<'_, Queue>, always: bool) {
        if q.driver.is_some() {
            if !q.notified {
                q.notified = true;
                let w = q.driver.clone();
                drop(q);
                w.into_iter().for_each(Waker::wake);
            }
            return;
        }
        drop(q);
        if always || this_thread() != self.thread {
            self.wake_loop();
        }
    }

    /// Takes the ready tasks into `into` (emptied first) and the remote spawns: those
    /// woken on the loop's thread first (the lock-free list is swapped in, no copy), then
    /// those queued by other threads.
    pub(crate) fn take(&self, into: &mut Vec<usize>) -> VecDeque<RemoteFn> {
        into.clear();
        if let Some(l) = self.local() {
            // `into` (empty) goes to the list, keeping its capacity for the next wake-ups.
            std::mem::swap(into, l);
        }
        let mut remote = VecDeque::new();
        // Nothing added to the locked queue since the last take: no lock. (`notified` is
        // only set by a notification after such an addition, so it is clear already.)
        if self.queued.load(Ordering::Acquire) {
            let mut q = self.lock();
            self.queued.store(false, Ordering::Relaxed);
            q.notified = false;
            into.extend(q.ready.drain(..));
            if !q.remote.is_empty() {
                remote = std::mem::take(&mut q.remote);
            }
        }
        remote
    }

    #[inline]
    pub(crate) fn has_ready(&self) -> bool {
        if let Some(l) = self.local() {
            if !l.is_empty() {
                return true;
            }
        }
        self.queued.load(Ordering::Acquire)
    }

    /// Sets (or with None clears) the waker of the task that drives the loop.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn set_driver(&self, w: Option<&Waker>) {
        let mut q = self.lock();
        match (w, &q.driver) {
            (Some(w), Some(old)) if old.will_wake(w) => {}
            (Some(w), _) => {
                q.driver = Some(w.clone());
                q.notified = false;
            }
            (None, _) => q.driver = None,
        }
        self.has_driver.store(q.driver.is_some(), Ordering::Relaxed);
    }
}

/// Whom an operation's completion wakes.
enum SlotWaker {
    Nobody,
    /// A task of this loop's executor, polled with its own waker: scheduled by id, with no
    /// waker clone (reference count) per operation and no call through its vtable. The same
    /// as waking its waker, which schedules that id.
    Task(usize),
    /// Any other waker (another executor's task, a combinator's waker).
    Other(Waker),
}

impl SlotWaker {
    fn is_none(&self) -> bool {
        matches!(self, SlotWaker::Nobody)
    }
}

struct Slot {
    gen: u32,
    /// The next free slot while this one is free.
    next_free: u32,
    live: bool,
    /// Completions flagged IOQ_CQE_MORE (multishot) not taken yet.
    more: VecDeque<sys::ioq_cqe>,
    /// The final completion, once it came.
    fin: Option<sys::ioq_cqe>,
    orphan: bool,
    waker: SlotWaker,
    keep: Option<Keep>,
    pool: u64,
    /// Close this handle once the operation has ended, with the given token (the token
    /// of a reserved slot, or IGNORE): a stream dropped or closed while a send that its
    /// writer adapter accepted is still going out lets that send finish first.
    then_close: Option<(u64, u64)>,
}

/// The slots, and a free list threaded through the free ones (no separate vector to push
/// to and pop from per operation).
struct Slab {
    slots: Vec<Slot>,
    /// The first free slot, `NO_SLOT` when none.
    free: u32,
}

const NO_SLOT: u32 = u32::MAX;

impl Default for Slab {
    fn default() -> Slab {
        Slab {
            slots: Vec::new(),
            free: NO_SLOT,
        }
    }
}

impl Slab {
    #[inline]
    fn insert(&mut self, keep: Option<Keep>, pool: u64, waker: SlotWaker) -> u64 {
        let idx = if self.free != NO_SLOT {
            self.free
        } else {
            self.grow()
        };
        // A free slot was emptied by `release` (more, fin, waker, keep and then_close are
        // clear): only what differs per operation is written.
        let s = &mut self.slots[idx as usize];
        debug_assert!(!s.live && s.more.is_empty() && s.fin.is_none() && s.waker.is_none());
        self.free = s.next_free;
        s.gen = s.gen.wrapping_add(1).max(1);
        s.live = true;
        s.orphan = false;
        // Both were emptied by `release` (or never set): nothing to drop, so no drop glue.
        std::mem::forget(std::mem::replace(&mut s.keep, keep));
        std::mem::forget(std::mem::replace(&mut s.waker, waker));
        s.pool = pool;
        ((s.gen as u64) << 32) | idx as u64
    }

    /// Adds a free slot (out of line: the slab only grows to the most operations in flight).
    #[cold]
    #[inline(never)]
    fn grow(&mut self) -> u32 {
        let idx = self.slots.len() as u32;
        assert!(idx != NO_SLOT, "ioq: too many operations in flight");
        self.slots.push(Slot {
            gen: 0,
            next_free: self.free,
            live: false,
            more: VecDeque::new(),
            fin: None,
            orphan: false,
            waker: SlotWaker::Nobody,
            keep: None,
            pool: 0,
            then_close: None,
        });
        self.free = idx;
        idx
    }

    #[inline]
    fn get(&mut self, token: u64) -> Option<&mut Slot> {
        let idx = (token & 0xffff_ffff) as usize;
        let gen = (token >> 32) as u32;
        match self.slots.get_mut(idx) {
            Some(s) if s.live && s.gen == gen => Some(s),
            _ => None,
        }
    }

    /// Frees the slot and hands back what it kept, to be dropped outside the borrow.
    fn remove(&mut self, token: u64) -> Option<Keep> {
        let idx = (token & 0xffff_ffff) as u32;
        self.get(token)?;
        self.release(idx)
    }

    /// Frees live slot `idx` (already looked up) and hands back what it kept.
    fn release(&mut self, idx: u32) -> Option<Keep> {
        let s = &mut self.slots[idx as usize];
        s.live = false;
        if !s.more.is_empty() {
            s.more.clear();
        }
        s.fin = None;
        s.waker = SlotWaker::Nobody;
        s.then_close = None;
        let keep = s.keep.take();
        s.next_free = self.free;
        self.free = idx;
        keep
    }

    fn live(&self) -> usize {
        self.slots.iter().filter(|s| s.live).count()
    }
}

pub(crate) struct Inner {
    raw: Cell<*mut sys::ioq_loop>,
    /// The Loop was dropped: nothing new may start.
    closed: Cell<bool>,
    /// Pool buffers handed out and not yet dropped: their memory belongs to the C loop, and
    /// a slice borrowed from one may outlive the Loop value, so the C loop is freed only
    /// after the last of them.
    pub(crate) held_bufs: Cell<usize>,
    ops: RefCell<Slab>,
    posts: RefCell<VecDeque<(u64, i64)>>,
    post_wakers: RefCell<Vec<Waker>>,
    pub(crate) tasks: RefCell<Vec<Option<TaskEntry>>>,
    pub(crate) free_tasks: RefCell<Vec<usize>>,
    /// The executor's spare ready list, swapped with the shared one on each take.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) batch: RefCell<Vec<usize>>,
    /// A foreign runtime's registration of the loop descriptor (the tokio driver's). It is
    /// dropped before ioq_loop_free closes that descriptor.
    pub(crate) foreign: RefCell<Option<Box<dyn Any>>>,
    pub(crate) shared: Arc<Shared>,
    /// The task of this loop's executor being polled and the waker it is polled with
    /// (set by `rt` around each poll, see `Polling`): an operation polled with that waker
    /// records the task's id instead of cloning the waker.
    polling: Cell<Option<(usize, *const Waker)>>,
    /// Changes whenever a task's poll starts and whenever a completion is delivered (or the
    /// loop is freed): an operation submitted inside a task's poll, and polled again with
    /// that task's own waker while the mark is unchanged, cannot have completed yet and
    /// already names that task as the one to wake (see `submit` and `Op::poll`).
    mark: Cell<u64>,
    /// The loop was made with IOQ_LOOP_HOST_FLUSH and a host driver flushes it: what this
    /// thread submits waits in ioq's queue until `flush` or the next poll.
    pub(crate) host_flush: Cell<bool>,
    /// Something was submitted since the last flush or poll (host_flush only).
    unflushed: Cell<bool>,
    /// The driver is running (it flushes before it returns): submissions need not wake it.
    pub(crate) in_drive: Cell<bool>,
    /// The driver's waker, woken at the first submission made outside the driver so that
    /// it flushes once the tasks that run before it are done (see `queued`).
    pub(crate) flush_waker: RefCell<Option<Waker>>,
    /// The driver has been woken (for a flush or a poll it owes) and has not run since.
    pub(crate) flush_woken: Cell<bool>,
    /// The C loop was made with IOQ_LOOP_HOST_FLUSH (`Loop::with_host_flush`).
    pub(crate) flush_flag: Cell<bool>,
    /// host_flush on a backend that submits nothing in batches (epoll, kqueue): the
    /// driver's flush is a poll. A record made inside a submit call (a send done at once)
    /// does not wake the host there (the flag's promise: it polls or flushes before it
    /// sleeps), and polling takes it where ioq_submit would pay a wake-up to announce it.
    pub(crate) poll_flush: Cell<bool>,
}

fn cqe(token: u64, result: i64) -> sys::ioq_cqe {
    sys::ioq_cqe {
        token,
        result,
        value: 0,
        op: 0,
        flags: 0,
        reserved: 0,
    }
}

impl Inner {
    pub(crate) fn new(raw: *mut sys::ioq_loop) -> Inner {
        Inner {
            raw: Cell::new(raw),
            closed: Cell::new(false),
            held_bufs: Cell::new(0),
            ops: RefCell::new(Slab::default()),
            posts: RefCell::new(VecDeque::new()),
            post_wakers: RefCell::new(Vec::new()),
            tasks: RefCell::new(Vec::new()),
            free_tasks: RefCell::new(Vec::new()),
            batch: RefCell::new(Vec::new()),
            foreign: RefCell::new(None),
            host_flush: Cell::new(false),
            unflushed: Cell::new(false),
            in_drive: Cell::new(false),
            flush_waker: RefCell::new(None),
            flush_woken: Cell::new(false),
            flush_flag: Cell::new(false),
            poll_flush: Cell::new(false),
            polling: Cell::new(None),
            mark: Cell::new(1),
            shared: Arc::new(Shared {
                raw: Mutex::new(raw as usize),
                queue: Mutex::new(Queue::default()),
                thread: this_thread(),
                woken: AtomicBool::new(false),
                local: UnsafeCell::new(Vec::new()),
                has_driver: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                queued: AtomicBool::new(false),
            }),
        }
    }

    /// The live loop, or EBADHANDLE once the Loop has been dropped: every handle of a freed
    /// loop is stale.
    pub(crate) fn raw(&self) -> Result<*mut sys::ioq_loop> {
        let r = self.raw.get();
        if r.is_null() || self.closed.get() {
            Err(Error::BADHANDLE)
        } else {
            Ok(r)
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub(crate) fn raw_or_null(&self) -> *mut sys::ioq_loop {
        self.raw.get()
    }

    /// A call that may have queued work for the kernel was made. On a host-flushed loop
    /// the first one since the last flush wakes the driver (unless it is running or
    /// already woken), which flushes when it runs: once per turn of the host's loop, after
    /// the tasks that ran before it.
    #[inline]
    pub(crate) fn queued(&self) {
        if self.host_flush.get() && !self.unflushed.replace(true) {
            self.wake_flusher();
        }
    }

    /// Something was submitted since the last flush or poll.
    pub(crate) fn is_unflushed(&self) -> bool {
        self.unflushed.get()
    }

    #[cold]
    pub(crate) fn wake_flusher(&self) {
        if self.in_drive.get() || self.flush_woken.get() {
            return;
        }
        if let Some(w) = self.flush_waker.borrow().as_ref() {
            self.flush_woken.set(true);
            w.wake_by_ref();
        }
    }

    /// Hands what was queued since the last flush or poll to the kernel (ioq_submit).
    pub(crate) fn flush(&self) {
        if self.unflushed.replace(false) {
            if let Ok(raw) = self.raw() {
                unsafe { sys::ioq_submit(raw) };
            }
        }
    }

    /// Puts `keep` into a new slot and runs the submit call with the slot's token. On a
    /// refused submission nothing was accepted, so the kept values come straight back.
    pub(crate) fn submit<F>(
        &self,
        keep: Option<Keep>,
        pool: u64,
        f: F,
    ) -> std::result::Result<u64, (Error, Option<Keep>)>
    where
        F: FnOnce(*mut sys::ioq_loop, u64) -> i32,
    {
        let raw = match self.raw() {
            Ok(r) => r,
            Err(e) => return Err((e, keep)),
        };
        // Inside a task's poll the task is, almost always, the one that awaits the
        // operation: its slot names it at once, so that the first poll (see `fresh`) need
        // not look the slot up. Anyone else who polls the future replaces it; at worst the
        // task gets one spurious wake-up.
        let waker = match self.polling.get() {
            Some((id, _)) => SlotWaker::Task(id),
            None => SlotWaker::Nobody,
        };
        let token = self.ops.borrow_mut().insert(keep, pool, waker);
        let rc = f(raw, token);
        if rc < 0 {
            let keep = self.ops.borrow_mut().remove(token);
            return Err((Error::from_code(rc as i64), keep));
        }
        self.queued();
        Ok(token)
    }

    /// The mark an operation submitted now keeps for `fresh`: 0 (never fresh) outside of a
    /// task's poll.
    #[inline]
    pub(crate) fn submit_mark(&self) -> u64 {
        if self.polling.get().is_some() {
            self.mark.get()
        } else {
            0
        }
    }

    /// Whether an operation submitted with `mark` is certainly still pending with the task
    /// that polls it now as the one to wake: nothing was delivered and no other poll
    /// started since its submission (the mark is unchanged), its slot was filled with the
    /// polling task's id then, and `w` is that task's own waker (the very one it is polled
    /// with, not a combinator's). Then the poll needs no slot lookup.
    #[inline]
    pub(crate) fn fresh(&self, mark: u64, w: &Waker) -> bool {
        mark != 0
            && mark == self.mark.get()
            && matches!(self.polling.get(), Some((_, tw)) if std::ptr::eq(tw, w))
    }

    /// A slot for an operation that will be submitted later by the loop itself (see
    /// `close_after`); until then it is pending like any other.
    pub(crate) fn reserve(&self) -> Result<u64> {
        self.raw()?;
        Ok(self.ops.borrow_mut().insert(None, 0, SlotWaker::Nobody))
    }

    /// Frees a reserved slot that was never used.
    pub(crate) fn release(&self, token: u64) {
        let keep = self.ops.borrow_mut().remove(token);
        drop(keep);
    }

    /// Whether `token` is an operation whose final completion has not arrived yet.
    pub(crate) fn is_pending(&self, token: u64) -> bool {
        let mut ops = self.ops.borrow_mut();
        matches!(ops.get(token), Some(s) if s.fin.is_none() && s.then_close.is_none())
    }

    /// Closes handle `h` (with `close_token`, or IGNORE) once the pending operation `token`
    /// has ended. False when `token` is not pending any more: the caller closes at once.
    pub(crate) fn close_after(&self, token: u64, h: u64, close_token: u64) -> bool {
        let mut ops = self.ops.borrow_mut();
        match ops.get(token) {
            Some(s) if s.fin.is_none() && s.then_close.is_none() => {
                s.then_close = Some((h, close_token));
                true
            }
            _ => false,
        }
    }

    /// Runs a deferred close: the operation it waited for has ended.
    fn deferred_close(&self, h: u64, token: u64) {
        let rc = match self.raw() {
            Ok(raw) => unsafe { sys::ioq_close(raw, h, token) },
            Err(e) => e.code(),
        };
        self.queued();
        if rc < 0 && token != IGNORE {
            self.dispatch(&cqe(token, rc as i64));
        }
    }

    /// Records who to wake: the task being polled by id when `w` is its own waker, else a
    /// clone of `w` (kept when it would wake the same task).
    #[inline]
    fn set_waker(&self, slot: &mut SlotWaker, w: &Waker) {
        if let Some((id, tw)) = self.polling.get() {
            // Safety: `tw` points at the waker the task is being polled with; `Polling`
            // clears it before that poll returns.
            if w.will_wake(unsafe { &*tw }) {
                *slot = SlotWaker::Task(id);
                return;
            }
        }
        match slot {
            SlotWaker::Other(old) if old.will_wake(w) => {}
            _ => *slot = SlotWaker::Other(w.clone()),
        }
    }

    /// Marks task `id` as being polled with `waker` until the guard goes.
    #[inline]
    pub(crate) fn polling<'a>(&'a self, id: usize, waker: &'a Waker) -> Polling<'a> {
        let prev = self.polling.replace(Some((id, waker as *const Waker)));
        self.mark.set(self.mark.get().wrapping_add(1));
        Polling { inner: self, prev }
    }

    /// For single-shot operations: the final completion and what the slot kept. Inlined
    /// into each operation future's poll: its result then needs no copy through memory.
    #[inline(always)]
    pub(crate) fn poll_final(
        &self,
        token: u64,
        cx: &mut Context<'_>,
    ) -> Poll<(sys::ioq_cqe, Option<Keep>)> {
        let mut guard = self.ops.borrow_mut();
        let ops = &mut *guard;
        let idx = (token & 0xffff_ffff) as u32;
        // `get`, spelled out so that the free list can be updated while the slot is held.
        let slot = match ops.slots.get_mut(idx as usize) {
            Some(s) if s.live && s.gen == (token >> 32) as u32 => s,
            _ => return Poll::Ready((cqe(token, Error::CANCELED.code() as i64), None)),
        };
        if let Some(last) = slot.fin.take() {
            // Free the slot in place, without `release`: the completion's delivery
            // emptied `waker` and `then_close`, and a single-shot operation has no `more`.
            debug_assert!(slot.waker.is_none());
            if slot.more.is_empty() && slot.then_close.is_none() {
                slot.live = false;
                let keep = slot.keep.take();
                slot.next_free = ops.free;
                ops.free = idx;
                return Poll::Ready((last, keep));
            }
            let keep = ops.release(idx);
            return Poll::Ready((last, keep));
        }
        self.set_waker(&mut slot.waker, cx.waker());
        Poll::Pending
    }

    /// For multishot operations: the next completion; `true` with the final one (the slot is
    /// then freed and its kept values returned).
    pub(crate) fn poll_next(
        &self,
        token: u64,
        cx: &mut Context<'_>,
    ) -> Poll<(sys::ioq_cqe, bool, Option<Keep>)> {
        let mut ops = self.ops.borrow_mut();
        let slot = match ops.get(token) {
            Some(s) => s,
            None => return Poll::Ready((cqe(token, Error::CANCELED.code() as i64), true, None)),
        };
        if let Some(c) = slot.more.pop_front() {
            return Poll::Ready((c, false, None));
        }
        if let Some(c) = slot.fin.take() {
            let keep = ops.remove(token);
            return Poll::Ready((c, true, keep));
        }
        self.set_waker(&mut slot.waker, cx.waker());
        Poll::Pending
    }

    /// A future went away before its final completion: cancel the operation and let the
    /// slot keep the buffer until the kernel is done with it.
    pub(crate) fn orphan(&self, token: u64) {
        let (leftover, pool, finished) = {
            let mut ops = self.ops.borrow_mut();
            let slot = match ops.get(token) {
                Some(s) => s,
                None => return,
            };
            slot.orphan = true;
            slot.waker = SlotWaker::Nobody;
            let fin = slot.fin.take();
            let finished = fin.is_some();
            let leftover: Vec<_> = slot.more.drain(..).chain(fin).collect();
            (leftover, slot.pool, finished)
        };
        for c in &leftover {
            self.cleanup(c, pool);
        }
        if finished {
            let keep = self.ops.borrow_mut().remove(token);
            drop(keep);
        } else if self
            .ops
            .borrow_mut()
            .get(token)
            .map_or(false, |s| s.then_close.is_some())
        {
            // A send that must finish before its stream closes: not cancelled.
        } else if let Ok(raw) = self.raw() {
            unsafe { sys::ioq_cancel(raw, token, IGNORE) };
            self.queued();
        }
    }

    /// Completions nobody will read may still carry resources: new handles and pool
    /// buffers. Give them back so that a dropped future leaks nothing.
    fn cleanup(&self, c: &sys::ioq_cqe, pool: u64) {
        let raw = match self.raw() {
            Ok(r) => r,
            Err(_) => return,
        };
        if c.result < 0 {
            return;
        }
        match c.op as u32 {
            sys::IOQ_OP_ACCEPT
            | sys::IOQ_OP_CONNECT
            | sys::IOQ_OP_LOCAL_CONNECT
            | sys::IOQ_OP_OPEN => {
                unsafe { sys::ioq_close(raw, c.value, IGNORE) };
                self.queued();
            }
            sys::IOQ_OP_RECV_POOL if c.flags as u32 & sys::IOQ_CQE_BUFFER != 0 => unsafe {
                sys::ioq_buf_release(raw, pool, c.value as u32);
            },
            _ => {}
        }
    }

    /// Polls ioq once and routes the completions. Returns how many were handled.
    pub(crate) fn turn(&self, timeout_ns: i64) -> Result<usize> {
        let raw = self.raw()?;
        // ioq_poll writes the records it returns; the rest is never read.
        let mut cqes = [std::mem::MaybeUninit::<sys::ioq_cqe>::uninit(); TURN_MAX];
        let n =
            unsafe { sys::ioq_poll(raw, cqes.as_mut_ptr().cast(), TURN_MAX as u32, timeout_ns) };
        // A poll flushes too.
        self.unflushed.set(false);
        if n < 0 {
            return Err(Error::from_code(n as i64));
        }
        for c in &cqes[..(n as usize).min(TURN_MAX)] {
            self.dispatch(unsafe { c.assume_init_ref() });
        }
        Ok(n as usize)
    }

    /// Routes one completion. The common one (the final completion of an operation whose
    /// future waits, with no close deferred behind it) is handled here, inline in `turn`'s
    /// loop; everything else in `dispatch_other`.
    #[inline]
    fn dispatch(&self, c: &sys::ioq_cqe) {
        if c.op as u32 != sys::IOQ_OP_POST
            && c.token != IGNORE
            && c.flags as u32 & sys::IOQ_CQE_MORE == 0
        {
            let mut ops = self.ops.borrow_mut();
            if let Some(slot) = ops.get(c.token) {
                if !slot.orphan && slot.then_close.is_none() {
                    self.mark.set(self.mark.get().wrapping_add(1));
                    slot.fin = Some(*c);
                    let waker = std::mem::replace(&mut slot.waker, SlotWaker::Nobody);
                    drop(ops);
                    self.wake_slot(waker);
                    return;
                }
            }
        }
        self.dispatch_other(c);
    }

    /// Wakes whom a slot named: a task of this loop's executor by id.
    #[inline]
    fn wake_slot(&self, waker: SlotWaker) {
        match waker {
            // Safety: an `Inner` is neither Send nor Sync (it lives in an Rc and has Cells),
            // so this runs on the thread that made it, the loop's.
            SlotWaker::Task(id) => unsafe { self.shared.schedule_on_loop_thread(id) },
            SlotWaker::Other(w) => w.wake(),
            SlotWaker::Nobody => {}
        }
    }

    #[inline(never)]
    fn dispatch_other(&self, c: &sys::ioq_cqe) {
        if c.op as u32 == sys::IOQ_OP_POST {
            self.posts.borrow_mut().push_back((c.token, c.result));
            let wakers = std::mem::take(&mut *self.post_wakers.borrow_mut());
            wakers.into_iter().for_each(Waker::wake);
            return;
        }
        if c.token == IGNORE {
            return;
        }
        self.mark.set(self.mark.get().wrapping_add(1));
        let last = c.flags as u32 & sys::IOQ_CQE_MORE == 0;
        let mut ops = self.ops.borrow_mut();
        let slot = match ops.get(c.token) {
            Some(s) => s,
            None => return,
        };
        let then_close = if last { slot.then_close.take() } else { None };
        if slot.orphan {
            let pool = slot.pool;
            let keep = if last { ops.remove(c.token) } else { None };
            drop(ops);
            self.cleanup(c, pool);
            drop(keep);
        } else {
            if last {
                slot.fin = Some(*c);
            } else {
                slot.more.push_back(*c);
            }
            let waker = std::mem::replace(&mut slot.waker, SlotWaker::Nobody);
            drop(ops);
            self.wake_slot(waker);
        }
        if let Some((h, token)) = then_close {
            self.deferred_close(h, token);
        }
    }

    pub(crate) fn poll_post(&self, cx: &mut Context<'_>) -> Poll<Result<(u64, i64)>> {
        if let Some(p) = self.posts.borrow_mut().pop_front() {
            return Poll::Ready(Ok(p));
        }
        if self.raw.get().is_null() {
            return Poll::Ready(Err(Error::CANCELED));
        }
        self.post_wakers.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.ops.borrow().live()
    }

    /// Ends the loop: drops the spawned tasks (their operations are cancelled), frees the
    /// C loop (which returns only when no buffer is referenced any more), then completes
    /// every operation that still has a waiting future with ECANCELED. The buffers stay in
    /// their slots for those futures to take back.
    /// While pool buffers are still held, the C loop's freeing waits for the last of them;
    /// the Loop is closed for new work at once either way.
    pub(crate) fn shutdown(&self) {
        // Spawns still queued by other threads never run; dropping them tells their
        // handles. Later ones are refused.
        let (remote, driver) = {
            let mut q = self.shared.lock();
            q.closed = true;
            self.shared.closed.store(true, Ordering::Relaxed);
            self.shared.has_driver.store(false, Ordering::Relaxed);
            (std::mem::take(&mut q.remote), q.driver.take())
        };
        if let Some(l) = self.shared.local() {
            l.clear();
        }
        drop(remote);
        // A driver task ends once it sees the loop closed.
        driver.into_iter().for_each(Waker::wake);
        loop {
            let tasks = std::mem::take(&mut *self.tasks.borrow_mut());
            if tasks.iter().all(|t| t.is_none()) {
                break;
            }
            drop(tasks);
        }
        self.free_tasks.borrow_mut().clear();
        self.closed.set(true);
        // The foreign runtime must forget the descriptor before ioq_loop_free closes it.
        let foreign = self.foreign.borrow_mut().take();
        drop(foreign);
        if self.held_bufs.get() == 0 {
            self.free_now();
        }
    }

    /// Called when a pool buffer goes: the last one of a closed loop frees it.
    pub(crate) fn buf_dropped(&self) {
        self.held_bufs.set(self.held_bufs.get() - 1);
        if self.held_bufs.get() == 0 && self.closed.get() {
            self.free_now();
        }
    }

    fn free_now(&self) {
        let raw = self.raw.get();
        if raw.is_null() {
            return;
        }
        {
            let mut guard = self.shared.raw.lock().unwrap_or_else(|e| e.into_inner());
            *guard = 0;
            unsafe { sys::ioq_loop_free(raw) };
        }
        self.raw.set(std::ptr::null_mut());
        self.mark.set(self.mark.get().wrapping_add(1));
        let mut dropped: Vec<Keep> = Vec::new();
        let mut wakers: Vec<SlotWaker> = Vec::new();
        {
            let mut ops = self.ops.borrow_mut();
            let tokens: Vec<u64> = ops
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.live)
                .map(|(i, s)| ((s.gen as u64) << 32) | i as u64)
                .collect();
            for t in tokens {
                let slot = ops.get(t).unwrap();
                if slot.orphan {
                    if let Some(k) = ops.remove(t) {
                        dropped.push(k);
                    }
                    continue;
                }
                if slot.fin.is_none() {
                    slot.fin = Some(cqe(t, Error::CANCELED.code() as i64));
                }
                let w = std::mem::replace(&mut slot.waker, SlotWaker::Nobody);
                if !w.is_none() {
                    wakers.push(w);
                }
            }
        }
        drop(dropped);
        for w in wakers {
            match w {
                SlotWaker::Task(id) => self.shared.schedule(id),
                SlotWaker::Other(w) => w.wake(),
                SlotWaker::Nobody => {}
            }
        }
        let wakers = std::mem::take(&mut *self.post_wakers.borrow_mut());
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// See [`Inner::polling`].
pub(crate) struct Polling<'a> {
    inner: &'a Inner,
    prev: Option<(usize, *const Waker)>,
}

impl Drop for Polling<'_> {
    #[inline]
    fn drop(&mut self) {
        self.inner.polling.set(self.prev);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
        self.free_now();
    }
}
