//! Futures of operations. They hold the loop and a token, nothing the kernel touches.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use ioq_sys as sys;

use crate::driver::{Inner, Keep};
use crate::error::{Error, Result};

pub(crate) type Finish<T> = fn(&Rc<Inner>, &sys::ioq_cqe, Option<Keep>) -> T;

enum State<T> {
    Pending(u64),
    Ready(T),
    Done,
}

/// The future of one operation. It was submitted when it was created; awaiting it gives
/// the result (and, for buffer operations, the buffer back). Dropping it before completion
/// cancels the operation; the loop keeps the buffer until the kernel has let go of it.
#[must_use = "an operation's result (and buffer) comes back only through its future"]
pub struct Op<T> {
    inner: Rc<Inner>,
    state: State<T>,
    finish: Finish<T>,
    /// The loop's mark at submission inside a task's poll (0 otherwise, and once a poll
    /// looked the slot up): see `Inner::fresh`.
    mark: u64,
}

// No field is ever pinned in place: the state moves freely.
impl<T> Unpin for Op<T> {}

fn failed(code: i64) -> sys::ioq_cqe {
    sys::ioq_cqe {
        token: 0,
        result: code,
        value: 0,
        op: 0,
        flags: 0,
        reserved: 0,
    }
}

impl<T> Op<T> {
    pub(crate) fn submit<F>(
        inner: &Rc<Inner>,
        keep: Option<Keep>,
        pool: u64,
        finish: Finish<T>,
        f: F,
    ) -> Op<T>
    where
        F: FnOnce(*mut sys::ioq_loop, u64) -> i32,
    {
        let state = match inner.submit(keep, pool, f) {
            Ok(token) => State::Pending(token),
            Err((e, keep)) => State::Ready(finish(inner, &failed(e.code() as i64), keep)),
        };
        Op {
            inner: inner.clone(),
            state,
            finish,
            mark: inner.submit_mark(),
        }
    }

    /// The future of a slot reserved with `Inner::reserve`, submitted later by the loop.
    pub(crate) fn reserved(inner: &Rc<Inner>, token: u64, finish: Finish<T>) -> Op<T> {
        Op {
            inner: inner.clone(),
            state: State::Pending(token),
            finish,
            mark: 0,
        }
    }

    /// The internal token while the operation is pending.
    pub(crate) fn token(&self) -> Option<u64> {
        match self.state {
            State::Pending(t) => Some(t),
            _ => None,
        }
    }

    /// An operation refused before submission (bad argument found on the Rust side).
    pub(crate) fn fail(
        inner: &Rc<Inner>,
        e: Error,
        keep: Option<Keep>,
        finish: Finish<T>,
    ) -> Op<T> {
        let v = finish(inner, &failed(e.code() as i64), keep);
        Op {
            inner: inner.clone(),
            state: State::Ready(v),
            finish,
            mark: 0,
        }
    }

    /// Asks ioq to cancel this operation (`ioq_cancel`). The operation still completes
    /// once, with ECANCELED or its own result, and still gives its buffer back. The
    /// returned future tells how many operations were found (0 or 1); it may be dropped.
    pub fn cancel(&self) -> Op<Result<usize>> {
        match self.state {
            State::Pending(token) => {
                Op::submit(&self.inner, None, 0, finish_count, |lp, t| unsafe {
                    sys::ioq_cancel(lp, token, t)
                })
            }
            _ => Op::fail(&self.inner, Error::CANCELED, None, |_, _, _| Ok(0)),
        }
    }

    /// Whether the result is already there (awaiting returns at once).
    pub fn is_pending(&self) -> bool {
        matches!(self.state, State::Pending(_))
    }
}

impl<T> Future for Op<T> {
    type Output = T;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = &mut *self;
        let token = match this.state {
            State::Pending(token) => token,
            State::Ready(_) => match std::mem::replace(&mut this.state, State::Done) {
                State::Ready(v) => return Poll::Ready(v),
                _ => unreachable!(),
            },
            State::Done => panic!("ioq::Op polled after it completed"),
        };
        // The first poll, in the task's poll that submitted it: still pending, and the
        // slot already names this task (no lookup, no waker to store).
        if this.inner.fresh(this.mark, cx.waker()) {
            return Poll::Pending;
        }
        // From now on the slot may name another waker: always look it up.
        this.mark = 0;
        match this.inner.poll_final(token, cx) {
            Poll::Ready((c, keep)) => {
                this.state = State::Done;
                Poll::Ready((this.finish)(&this.inner, &c, keep))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for Op<T> {
    fn drop(&mut self) {
        if let State::Pending(token) = self.state {
            self.inner.orphan(token);
        }
    }
}

/// A multishot operation (accept or pooled receive with IOQ_MULTISHOT): `next().await`
/// gives one item per completion, then `None` after the final one. Dropping it cancels.
#[must_use = "a multishot operation is read through next()"]
pub struct MultiOp<T> {
    inner: Rc<Inner>,
    token: Option<u64>,
    pending_err: Option<T>,
    finish: Finish<T>,
}

impl<T> Unpin for MultiOp<T> {}

impl<T> MultiOp<T> {
    pub(crate) fn submit<F>(
        inner: &Rc<Inner>,
        keep: Option<Keep>,
        pool: u64,
        finish: Finish<T>,
        f: F,
    ) -> MultiOp<T>
    where
        F: FnOnce(*mut sys::ioq_loop, u64) -> i32,
    {
        match inner.submit(keep, pool, f) {
            Ok(token) => MultiOp {
                inner: inner.clone(),
                token: Some(token),
                pending_err: None,
                finish,
            },
            Err((e, keep)) => MultiOp {
                inner: inner.clone(),
                token: None,
                pending_err: Some(finish(inner, &failed(e.code() as i64), keep)),
                finish,
            },
        }
    }

    /// The next completion's item; `None` once the operation has ended.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Next<'_, T> {
        Next { op: self }
    }

    /// Ends the operation: its last item is ECANCELED (unless it ended already).
    pub fn cancel(&self) -> Op<Result<usize>> {
        match self.token {
            Some(token) => Op::submit(&self.inner, None, 0, finish_count, |lp, t| unsafe {
                sys::ioq_cancel(lp, token, t)
            }),
            None => Op::fail(&self.inner, Error::CANCELED, None, |_, _, _| Ok(0)),
        }
    }
}

/// Future of [`MultiOp::next`].
pub struct Next<'a, T> {
    op: &'a mut MultiOp<T>,
}

impl<T> Future for Next<'_, T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let op = &mut *self.op;
        if let Some(v) = op.pending_err.take() {
            return Poll::Ready(Some(v));
        }
        let token = match op.token {
            Some(t) => t,
            None => return Poll::Ready(None),
        };
        match op.inner.poll_next(token, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready((c, last, keep)) => {
                if last {
                    op.token = None;
                }
                // A clean end (result 0 on the final completion of accept) is not an item.
                if last && c.result == 0 && c.op as u32 != sys::IOQ_OP_RECV_POOL && c.value == 0 {
                    drop(keep);
                    return Poll::Ready(None);
                }
                Poll::Ready(Some((op.finish)(&op.inner, &c, keep)))
            }
        }
    }
}

impl<T> Drop for MultiOp<T> {
    fn drop(&mut self) {
        if let Some(token) = self.token {
            self.inner.orphan(token);
        }
    }
}

pub(crate) fn finish_count(_: &Rc<Inner>, c: &sys::ioq_cqe, _: Option<Keep>) -> Result<usize> {
    if c.result < 0 {
        Err(Error::from_code(c.result))
    } else {
        Ok(c.result as usize)
    }
}

pub(crate) fn finish_unit(_: &Rc<Inner>, c: &sys::ioq_cqe, _: Option<Keep>) -> Result<()> {
    if c.result < 0 {
        Err(Error::from_code(c.result))
    } else {
        Ok(())
    }
}
