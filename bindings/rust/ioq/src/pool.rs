//! Provided-buffer pools: memory is taken only when data arrives.

use std::ops::Deref;
use std::rc::Rc;

use ioq_sys as sys;

use crate::driver::{Inner, IGNORE};

pub(crate) struct PoolInner {
    pub(crate) inner: Rc<Inner>,
    pub(crate) h: u64,
}

impl Drop for PoolInner {
    // Runs only when no receive and no handed-out buffer refers to the pool any more,
    // because each of them holds this Rc: ioq refuses to close a pool in use.
    fn drop(&mut self) {
        let raw = self.inner.raw_or_null();
        if !raw.is_null() {
            unsafe { sys::ioq_close(raw, self.h, IGNORE) };
            self.inner.queued();
        }
    }
}

/// A pool of equal buffers for `recv_pool`. Cloning shares the pool.
#[derive(Clone)]
pub struct Pool {
    pub(crate) inner: Rc<PoolInner>,
}

impl Pool {
    pub(crate) fn new(inner: &Rc<Inner>, h: u64) -> Pool {
        Pool {
            inner: Rc::new(PoolInner {
                inner: inner.clone(),
                h,
            }),
        }
    }
}

/// A filled pool buffer; it goes back to its pool when dropped.
pub struct PoolBuf {
    pool: Rc<PoolInner>,
    id: u32,
    len: usize,
}

impl PoolBuf {
    pub(crate) fn new(pool: Rc<PoolInner>, id: u32, len: usize) -> PoolBuf {
        pool.inner.held_bufs.set(pool.inner.held_bufs.get() + 1);
        PoolBuf { pool, id, len }
    }

    /// The buffer id within its pool.
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl Deref for PoolBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        let raw = self.pool.inner.raw_or_null();
        if raw.is_null() {
            return &[];
        }
        let p = unsafe { sys::ioq_buf(raw, self.pool.h, self.id) } as *const u8;
        if p.is_null() {
            return &[];
        }
        unsafe { std::slice::from_raw_parts(p, self.len) }
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        let raw = self.pool.inner.raw_or_null();
        if !raw.is_null() {
            unsafe { sys::ioq_buf_release(raw, self.pool.h, self.id) };
        }
        self.pool.inner.buf_dropped();
    }
}

impl std::fmt::Debug for PoolBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PoolBuf(id {}, {} bytes)", self.id, self.len)
    }
}
