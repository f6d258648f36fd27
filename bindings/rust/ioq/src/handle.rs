//! Typed handles and their operations.

use std::cell::Cell;
use std::ffi::CString;
use std::net::SocketAddr;
use std::rc::Rc;

use ioq_sys as sys;

use crate::addr::{from_raw, to_raw};
use crate::buf::{IoBuf, IoBufMut};
use crate::driver::{Inner, Keep, IGNORE};
use crate::error::{check, Error, Result};
use crate::op::{finish_unit, MultiOp, Op};
use crate::pool::{Pool, PoolBuf};

/// An ioq handle owned by one Rust value; dropping it closes the handle, which cancels
/// whatever is still pending on it, except the send of a stream's writer adapter
/// (`linger`): bytes that `poll_write` accepted still go out, and the close follows.
pub(crate) struct Handle {
    pub(crate) inner: Rc<Inner>,
    pub(crate) h: u64,
    /// Token of the writer adapter's send in flight, 0 when none.
    pub(crate) linger: Cell<u64>,
}

impl Handle {
    pub(crate) fn new(inner: &Rc<Inner>, h: u64) -> Handle {
        Handle {
            inner: inner.clone(),
            h,
            linger: Cell::new(0),
        }
    }

    fn raw(&self) -> Result<*mut sys::ioq_loop> {
        self.inner.raw()
    }

    pub(crate) fn close(mut self) -> Op<Result<()>> {
        let h = std::mem::replace(&mut self.h, 0);
        let linger = self.linger.replace(0);
        if linger != 0 && self.inner.is_pending(linger) {
            if let Ok(token) = self.inner.reserve() {
                if self.inner.close_after(linger, h, token) {
                    return Op::reserved(&self.inner, token, finish_unit);
                }
                // Cannot happen (checked above); submit the close below instead.
                self.inner.release(token);
            }
        }
        Op::submit(&self.inner, None, 0, finish_unit, |lp, t| unsafe {
            sys::ioq_close(lp, h, t)
        })
    }

    pub(crate) fn recv<B: IoBufMut>(&self, buf: B) -> Op<(Result<usize>, B)> {
        let h = self.h;
        let mut b = Keep::buf(buf);
        let (p, n) = {
            let r = b.get_mut::<B>();
            (r.stable_mut_ptr(), r.bytes_total())
        };
        Op::submit(&self.inner, Some(b), 0, finish_read::<B>, |lp, t| unsafe {
            sys::ioq_recv(lp, h, p.cast(), n, t)
        })
    }

    pub(crate) fn send<B: IoBuf>(&self, buf: B) -> Op<(Result<usize>, B)> {
        let h = self.h;
        let mut b = Keep::buf(buf);
        let (p, n) = {
            let r = b.get_mut::<B>();
            (r.stable_ptr(), r.bytes_init())
        };
        Op::submit(&self.inner, Some(b), 0, finish_write::<B>, |lp, t| unsafe {
            sys::ioq_send(lp, h, p.cast(), n, t)
        })
    }

    pub(crate) fn sendv<B: IoBuf>(&self, bufs: Vec<B>) -> Op<(Result<usize>, Vec<B>)> {
        let h = self.h;
        // The iovec array is copied by ioq; the buffers it points at stay in the slot.
        let iov: Vec<sys::ioq_iov> = bufs
            .iter()
            .map(|b| sys::ioq_iov {
                base: b.stable_ptr() as *mut _,
                len: b.bytes_init(),
            })
            .collect();
        Op::submit(
            &self.inner,
            Some(Keep::boxed(bufs)),
            0,
            finish_write::<Vec<B>>,
            |lp, t| unsafe { sys::ioq_sendv(lp, h, iov.as_ptr(), iov.len() as u32, t) },
        )
    }

    pub(crate) fn send_to<B: IoBuf>(&self, buf: B, to: SocketAddr) -> Op<(Result<usize>, B)> {
        let h = self.h;
        let mut b = Keep::buf(buf);
        let (p, n) = {
            let r = b.get_mut::<B>();
            (r.stable_ptr(), r.bytes_init())
        };
        let a = to_raw(&to);
        Op::submit(&self.inner, Some(b), 0, finish_write::<B>, |lp, t| unsafe {
            sys::ioq_sendto(lp, h, p.cast(), n, &a, t)
        })
    }

    pub(crate) fn recv_from<B: IoBufMut>(&self, buf: B) -> Op<(Result<(usize, SocketAddr)>, B)> {
        let h = self.h;
        let mut b = Box::new(RecvFrom {
            buf,
            addr: sys::ioq_addr {
                family: 0,
                port: 0,
                scope_id: 0,
                ip: [0; 16],
            },
        });
        let (p, n) = (b.buf.stable_mut_ptr(), b.buf.bytes_total());
        let a: *mut sys::ioq_addr = &mut b.addr;
        Op::submit(
            &self.inner,
            Some(Keep::Boxed(b)),
            0,
            finish_recv_from::<B>,
            |lp, t| unsafe { sys::ioq_recvfrom(lp, h, p.cast(), n, a, t) },
        )
    }

    pub(crate) fn read_at<B: IoBufMut>(&self, buf: B, off: u64) -> Op<(Result<usize>, B)> {
        let h = self.h;
        let mut b = Keep::buf(buf);
        let (p, n) = {
            let r = b.get_mut::<B>();
            (r.stable_mut_ptr(), r.bytes_total())
        };
        Op::submit(&self.inner, Some(b), 0, finish_read::<B>, |lp, t| unsafe {
            sys::ioq_read(lp, h, p.cast(), n, off, t)
        })
    }

    pub(crate) fn write_at<B: IoBuf>(&self, buf: B, off: u64) -> Op<(Result<usize>, B)> {
        let h = self.h;
        let mut b = Keep::buf(buf);
        let (p, n) = {
            let r = b.get_mut::<B>();
            (r.stable_ptr(), r.bytes_init())
        };
        Op::submit(&self.inner, Some(b), 0, finish_write::<B>, |lp, t| unsafe {
            sys::ioq_write(lp, h, p.cast(), n, off, t)
        })
    }

    pub(crate) fn simple(
        &self,
        f: unsafe extern "C" fn(*mut sys::ioq_loop, u64, u64) -> i32,
    ) -> Op<Result<()>> {
        let h = self.h;
        Op::submit(&self.inner, None, 0, finish_unit, |lp, t| unsafe {
            f(lp, h, t)
        })
    }

    pub(crate) fn accept<S: FromHandle>(&self) -> Op<Result<S>> {
        let h = self.h;
        Op::submit(&self.inner, None, 0, finish_new::<S>, |lp, t| unsafe {
            sys::ioq_accept(lp, h, 0, t)
        })
    }

    pub(crate) fn accept_multi<S: FromHandle>(&self) -> MultiOp<Result<S>> {
        let h = self.h;
        MultiOp::submit(&self.inner, None, 0, finish_new::<S>, |lp, t| unsafe {
            sys::ioq_accept(lp, h, sys::IOQ_MULTISHOT, t)
        })
    }

    pub(crate) fn recv_pool(&self, pool: &Pool) -> Op<Result<Option<PoolBuf>>> {
        let (h, ph) = (self.h, pool.inner.h);
        let keep = Keep::boxed(pool.inner.clone());
        Op::submit(&self.inner, Some(keep), ph, finish_pool, |lp, t| unsafe {
            sys::ioq_recv_pool(lp, h, ph, 0, t)
        })
    }

    pub(crate) fn recv_pool_multi(&self, pool: &Pool) -> RecvPoolMulti {
        let (h, ph) = (self.h, pool.inner.h);
        let keep = Keep::boxed(pool.inner.clone());
        let op = MultiOp::submit(
            &self.inner,
            Some(keep),
            ph,
            |_, c, _| *c,
            |lp, t| unsafe { sys::ioq_recv_pool(lp, h, ph, sys::IOQ_MULTISHOT, t) },
        );
        RecvPoolMulti {
            op,
            pool: pool.inner.clone(),
        }
    }

    pub(crate) fn addr(
        &self,
        f: unsafe extern "C" fn(*mut sys::ioq_loop, u64, *mut sys::ioq_addr) -> i32,
    ) -> Result<SocketAddr> {
        let mut a = sys::ioq_addr {
            family: 0,
            port: 0,
            scope_id: 0,
            ip: [0; 16],
        };
        check(unsafe { f(self.raw()?, self.h, &mut a) } as i64)?;
        from_raw(&a)
    }

    pub(crate) fn setopt(&self, opt: u32, value: i64) -> Result<()> {
        check(unsafe { sys::ioq_setopt(self.raw()?, self.h, opt, value) } as i64).map(|_| ())
    }

    pub(crate) fn os_handle(&self) -> Result<u64> {
        let mut v = 0u64;
        check(unsafe { sys::ioq_os_handle(self.raw()?, self.h, &mut v) } as i64)?;
        Ok(v)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.h != 0 {
            let linger = self.linger.get();
            if linger != 0 && self.inner.close_after(linger, self.h, IGNORE) {
                return;
            }
            let raw = self.inner.raw_or_null();
            if !raw.is_null() {
                unsafe { sys::ioq_close(raw, self.h, IGNORE) };
                self.inner.queued();
            }
        }
    }
}

/// A multishot pooled receive: each `next().await` gives the next filled pool buffer,
/// `Ok(None)` at end of stream, and `None` once the operation has ended.
pub struct RecvPoolMulti {
    op: MultiOp<sys::ioq_cqe>,
    pool: Rc<crate::pool::PoolInner>,
}

impl RecvPoolMulti {
    pub async fn next(&mut self) -> Option<Result<Option<PoolBuf>>> {
        let c = self.op.next().await?;
        if c.result < 0 {
            return Some(Err(Error::from_code(c.result)));
        }
        if c.flags as u32 & sys::IOQ_CQE_BUFFER == 0 {
            return Some(Ok(None));
        }
        Some(Ok(Some(PoolBuf::new(
            self.pool.clone(),
            c.value as u32,
            c.result as usize,
        ))))
    }

    /// Ends the receive; buffers already handed out stay valid.
    pub fn cancel(&self) -> Op<Result<usize>> {
        self.op.cancel()
    }
}

struct RecvFrom<B> {
    buf: B,
    addr: sys::ioq_addr,
}

fn result_len(c: &sys::ioq_cqe) -> Result<usize> {
    if c.result < 0 {
        Err(Error::from_code(c.result))
    } else {
        Ok(c.result as usize)
    }
}

fn finish_read<B: IoBufMut>(
    _: &Rc<Inner>,
    c: &sys::ioq_cqe,
    keep: Option<Keep>,
) -> (Result<usize>, B) {
    let mut b: B = keep.expect("buffer kept").take();
    if c.result >= 0 {
        let n = (c.result as usize).min(b.bytes_total());
        unsafe { b.set_init(n) };
    }
    (result_len(c), b)
}

fn finish_write<B: 'static>(
    _: &Rc<Inner>,
    c: &sys::ioq_cqe,
    keep: Option<Keep>,
) -> (Result<usize>, B) {
    (result_len(c), keep.expect("buffer kept").take())
}

fn finish_recv_from<B: IoBufMut>(
    _: &Rc<Inner>,
    c: &sys::ioq_cqe,
    keep: Option<Keep>,
) -> (Result<(usize, SocketAddr)>, B) {
    let mut b: RecvFrom<B> = keep.expect("buffer kept").take();
    let res = match result_len(c) {
        Ok(n) => {
            let n = n.min(b.buf.bytes_total());
            unsafe { b.buf.set_init(n) };
            from_raw(&b.addr).map(|a| (n, a))
        }
        Err(e) => Err(e),
    };
    (res, b.buf)
}

pub(crate) fn finish_new<S: FromHandle>(
    inner: &Rc<Inner>,
    c: &sys::ioq_cqe,
    _: Option<Keep>,
) -> Result<S> {
    if c.result < 0 {
        return Err(Error::from_code(c.result));
    }
    Ok(S::from_handle(Handle::new(inner, c.value)))
}

pub(crate) fn finish_pool(
    inner: &Rc<Inner>,
    c: &sys::ioq_cqe,
    keep: Option<Keep>,
) -> Result<Option<PoolBuf>> {
    let _ = inner;
    if c.result < 0 {
        return Err(Error::from_code(c.result));
    }
    if c.flags as u32 & sys::IOQ_CQE_BUFFER == 0 {
        return Ok(None);
    }
    let pool: Rc<crate::pool::PoolInner> = keep.expect("pool kept").take();
    Ok(Some(PoolBuf::new(pool, c.value as u32, c.result as usize)))
}

pub(crate) trait FromHandle: Sized {
    fn from_handle(h: Handle) -> Self;
}

/// Keeps a C string alive in the slot for the call and until the completion.
pub(crate) fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::INVAL)
}
