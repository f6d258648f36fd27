//! Safe, completion-based asynchronous I/O over the ioq C library.
//!
//! Operations take owned buffers (`Vec<u8>`, `Box<[u8]>`, arrays, or anything that
//! implements [`IoBuf`] / [`IoBufMut`]) and give them back with the result, the model of
//! tokio-uring and compio: no borrow can outlive the kernel's use of the memory. The
//! buffer of an operation in flight is owned by the [`Loop`], not by the future, so
//! dropping or even `mem::forget`-ing a future cannot free memory the kernel still writes.
//! Dropping the `Loop` cancels every operation and waits until the kernel has let go.
//!
//! ```no_run
//! ioq::rt::block_on(async {
//!     let lp = ioq::rt::current();
//!     let listener = lp.tcp_listen("127.0.0.1:0".parse().unwrap()).unwrap();
//!     let conn = listener.accept().await.unwrap();
//!     let (n, buf) = conn.recv(Vec::with_capacity(4096)).await;
//!     let (_, _) = conn.send(buf).await;
//!     let _ = n;
//! });
//! ```
//!
//! Runtimes: [`rt`] is ioq's own single-threaded executor (`block_on`, `spawn` with a
//! [`rt::JoinHandle`], `timeout`, `select`); [`tokio`] (feature `tokio`) drives a loop
//! from a tokio runtime instead, so ioq futures and tokio's own run side by side. Other
//! threads hand work to a loop with [`Remote::spawn`].
//!
//! Reader and writer traits: [`TcpStream`] and [`LocalStream`] implement `AsyncRead`,
//! `AsyncBufRead` and `AsyncWrite` of futures-io (feature `futures-io`) and of tokio
//! (feature `tokio`), so tokio-util's codecs, the futures io utilities and the like work
//! on ioq streams. Those traits lend a slice for one call while ioq's operations own their
//! buffer until they complete, so each direction of a stream has one internal buffer and
//! the adapters copy once: a read receives into a 16 KiB buffer and copies out what the
//! caller asks for (`poll_fill_buf` lends that buffer without the copy); a write copies up
//! to 64 KiB into the write buffer, submits the send and returns at once, and the next
//! write or flush waits for that send (and reports its error). Bytes a write accepted still
//! go out when the stream is dropped or closed right after; a read's receive stays in
//! flight if its future is dropped, and its data goes to the next read. The owned-buffer
//! operations have no copy. `make bench` measures both (the Rust rows).

mod addr;
mod buf;
mod driver;
mod error;
mod handle;
mod net;
mod op;
mod pool;
pub mod rt;
mod stream;
#[cfg(all(feature = "tokio", unix))]
pub mod tokio;

use std::ffi::CString;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub use ioq_sys as sys;

pub use crate::addr::{format_addr, parse_addr};
pub use crate::buf::{IoBuf, IoBufMut};
pub use crate::error::{Error, Result};
pub use crate::handle::RecvPoolMulti;
pub use crate::net::{
    File, LocalListener, LocalStream, OpenOptions, TcpListener, TcpStream, UdpSocket,
};
pub use crate::op::{MultiOp, Next, Op};
pub use crate::pool::{Pool, PoolBuf};

use crate::addr::{from_raw, to_raw};
use crate::driver::{Inner, Keep};
use crate::error::check;
use crate::handle::{cstring, finish_new, Handle};
use crate::op::finish_unit;

/// The library's version as MAJOR*10000 + MINOR*100 + PATCH.
pub fn version() -> u32 {
    unsafe { sys::ioq_version() }
}

/// The library's version as text.
pub fn version_string() -> &'static str {
    error::static_str(unsafe { sys::ioq_version_string() })
}

/// Which kernel interface a loop uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The best one available; the IOQ_BACKEND environment variable may choose.
    Auto,
    Epoll,
    IoUring,
    Kqueue,
    Iocp,
}

/// An ioq loop. It belongs to the thread that created it (it is neither `Send` nor
/// `Sync`); other threads reach it through a [`Remote`]. It derefs to [`LoopRef`], which
/// has the operations. Dropping it cancels every operation in flight and waits until no
/// buffer is referenced any more; futures still alive then complete with ECANCELED and
/// give their buffers back.
pub struct Loop {
    r: LoopRef,
}

/// A shared reference to a loop, as handles and tasks keep it. Once the [`Loop`] itself
/// has been dropped, everything done through a `LoopRef` fails with EBADHANDLE.
#[derive(Clone)]
pub struct LoopRef {
    inner: Rc<Inner>,
}

impl Loop {
    /// A loop with the default backend.
    pub fn new() -> Result<Loop> {
        Loop::with_backend(Backend::Auto)
    }

    pub fn with_backend(backend: Backend) -> Result<Loop> {
        Loop::make(backend, 0)
    }

    /// A loop for a foreign driver that flushes submissions itself (`IOQ_LOOP_HOST_FLUSH`,
    /// ioq 1.1): on io_uring, operations submitted while [`tokio::Driver`] drives the loop
    /// wait in the submission queue and the driver hands them to the kernel once per turn
    /// of tokio's loop, in one system call, instead of one call each. Elsewhere (other
    /// backends, or [`Loop::block_on`], whose polls flush anyway) it changes nothing.
    /// [`tokio::run`] makes its loop this way. With an ioq 1.0 library the flag is refused
    /// and the loop is made without it.
    pub fn with_host_flush(backend: Backend) -> Result<Loop> {
        match Loop::make(backend, sys::IOQ_LOOP_HOST_FLUSH) {
            Err(e) if e == Error::INVAL => Loop::make(backend, 0),
            Ok(lp) => {
                lp.r.inner.flush_flag.set(true);
                Ok(lp)
            }
            Err(e) => Err(e),
        }
    }

    fn make(backend: Backend, flags: u32) -> Result<Loop> {
        let b = match backend {
            Backend::Auto => sys::IOQ_BACKEND_AUTO,
            Backend::Epoll => sys::IOQ_BACKEND_EPOLL,
            Backend::IoUring => sys::IOQ_BACKEND_URING,
            Backend::Kqueue => sys::IOQ_BACKEND_KQUEUE,
            Backend::Iocp => sys::IOQ_BACKEND_IOCP,
        };
        let opts = sys::ioq_loop_options {
            size: std::mem::size_of::<sys::ioq_loop_options>() as u32,
            backend: b,
            flags,
            threadpool_size: 0,
            reserved: [0; 8],
        };
        let mut raw: *mut sys::ioq_loop = std::ptr::null_mut();
        check(unsafe { sys::ioq_loop_new(&opts, &mut raw) } as i64)?;
        Ok(Loop {
            r: LoopRef {
                inner: Rc::new(Inner::new(raw)),
            },
        })
    }

    /// A reference that handles and tasks may keep.
    pub fn handle(&self) -> LoopRef {
        self.r.clone()
    }

    /// Runs `fut` to completion on this thread, together with the tasks spawned on this
    /// loop, polling ioq whenever nothing is ready to run.
    ///
    /// # Panics
    /// When called from inside a running `block_on` (of any loop) or a future driven by
    /// [`tokio`] on this thread: it would block the loop that runs the caller. A panic of
    /// `fut` itself unwinds out of `block_on`; a spawned task's panic does not (its
    /// [`rt::JoinHandle`] gives a [`rt::JoinError`]).
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        rt::run(&self.r, fut)
    }
}

impl Deref for Loop {
    type Target = LoopRef;
    fn deref(&self) -> &LoopRef {
        &self.r
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.r.inner.shutdown();
    }
}

impl LoopRef {
    pub(crate) fn inner(&self) -> &Rc<Inner> {
        &self.inner
    }

    fn raw(&self) -> Result<*mut sys::ioq_loop> {
        self.inner.raw()
    }

    /// The backend's name: "epoll", "io_uring", "kqueue" or "iocp" ("" once dropped).
    pub fn backend(&self) -> &'static str {
        error::static_str(unsafe { sys::ioq_loop_backend(self.inner.raw_or_null()) })
    }

    /// `IOQ_CAP_*` bits of what the backend does natively.
    pub fn caps(&self) -> u32 {
        unsafe { sys::ioq_loop_caps(self.inner.raw_or_null()) }
    }

    /// ioq's monotonic clock.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(unsafe { sys::ioq_now(self.inner.raw_or_null()) })
    }

    /// A descriptor that becomes readable when the loop has work (for a foreign loop).
    pub fn loop_fd(&self) -> Result<i64> {
        check(unsafe { sys::ioq_loop_fd(self.raw()?) })
    }

    /// Polls once, waiting at most `timeout` (`None` = until something completes), and
    /// routes the completions to their futures. For driving the loop by hand.
    pub fn turn(&self, timeout: Option<Duration>) -> Result<usize> {
        let ns = match timeout {
            None => -1,
            Some(d) => d.as_nanos().min(i64::MAX as u128) as i64,
        };
        self.inner.turn(ns)
    }

    /// Operations whose final completion has not been taken yet.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    /// A `Send + Sync` handle for other threads: `ioq_post` and `ioq_wake`.
    pub fn remote(&self) -> Remote {
        Remote {
            shared: self.inner.shared.clone(),
        }
    }

    /// The next value posted through a [`Remote`], in posting order.
    pub fn next_post(&self) -> NextPost {
        NextPost {
            inner: self.inner.clone(),
        }
    }

    pub fn tcp_listen(&self, addr: SocketAddr) -> Result<TcpListener> {
        self.tcp_listen_with(addr, 0, 0)
    }

    /// `flags`: `IOQ_REUSEPORT`, `IOQ_V6ONLY`; backlog 0 = default.
    pub fn tcp_listen_with(
        &self,
        addr: SocketAddr,
        backlog: u32,
        flags: u32,
    ) -> Result<TcpListener> {
        let a = to_raw(&addr);
        let mut h = 0u64;
        check(unsafe { sys::ioq_tcp_listen(self.raw()?, &a, backlog, flags, &mut h) } as i64)?;
        Ok(TcpListener {
            h: Handle::new(&self.inner, h),
        })
    }

    pub fn udp_bind(&self, addr: SocketAddr) -> Result<UdpSocket> {
        let a = to_raw(&addr);
        let mut h = 0u64;
        check(unsafe { sys::ioq_udp_bind(self.raw()?, &a, 0, &mut h) } as i64)?;
        Ok(UdpSocket {
            h: Handle::new(&self.inner, h),
        })
    }

    /// An AF_UNIX listener at `path`; `unlink` removes a stale socket file first.
    pub fn local_listen(&self, path: &str, unlink: bool) -> Result<LocalListener> {
        let p = cstring(path)?;
        let flags = if unlink { sys::IOQ_UNLINK } else { 0 };
        let mut h = 0u64;
        check(unsafe { sys::ioq_local_listen(self.raw()?, p.as_ptr(), 0, flags, &mut h) } as i64)?;
        Ok(LocalListener {
            h: Handle::new(&self.inner, h),
        })
    }

    pub fn connect(&self, addr: SocketAddr) -> Op<Result<TcpStream>> {
        let a = to_raw(&addr);
        Op::submit(
            &self.inner,
            None,
            0,
            finish_new::<TcpStream>,
            |lp, t| unsafe { sys::ioq_connect(lp, &a, 0, t) },
        )
    }

    pub fn local_connect(&self, path: &str) -> Op<Result<LocalStream>> {
        let p = match cstring(path) {
            Ok(p) => p,
            Err(e) => return Op::fail(&self.inner, e, None, finish_new::<LocalStream>),
        };
        let ptr = p.as_ptr();
        Op::submit(
            &self.inner,
            Some(Keep::boxed(p)),
            0,
            finish_new::<LocalStream>,
            |lp, t| unsafe { sys::ioq_local_connect(lp, ptr, 0, t) },
        )
    }

    pub fn open(&self, path: &str, opts: &OpenOptions) -> Op<Result<File>> {
        let p = match cstring(path) {
            Ok(p) => p,
            Err(e) => return Op::fail(&self.inner, e, None, finish_new::<File>),
        };
        let (ptr, flags, mode) = (p.as_ptr(), opts.flags, opts.mode);
        Op::submit(
            &self.inner,
            Some(Keep::boxed(p)),
            0,
            finish_new::<File>,
            |lp, t| unsafe { sys::ioq_open(lp, ptr, flags, mode, t) },
        )
    }

    /// Completes after `d` (never earlier).
    pub fn sleep(&self, d: Duration) -> Op<Result<()>> {
        let ns = d.as_nanos().min(u64::MAX as u128) as u64;
        Op::submit(&self.inner, None, 0, finish_unit, |lp, t| unsafe {
            sys::ioq_timeout(lp, ns, t)
        })
    }

    /// Runs `fut` for at most `d` on this loop's clock: its output, or
    /// [`rt::Elapsed`], in which case `fut` is dropped (its operations are cancelled).
    /// The timer starts now.
    pub fn timeout<F: Future>(&self, d: Duration, fut: F) -> rt::Timeout<F> {
        rt::Timeout::new(fut, self.sleep(d))
    }

    /// Completes when [`now`](Loop::now) reaches `deadline` (never earlier), a time on
    /// this loop's clock: many timers can share one base (`let t = lp.now();` then
    /// `lp.sleep_until(t + d)`). A deadline already past completes at the next poll.
    /// Needs ABI 1.1.
    pub fn sleep_until(&self, deadline: Duration) -> Op<Result<()>> {
        let ns = deadline.as_nanos().min(u64::MAX as u128) as u64;
        Op::submit(&self.inner, None, 0, finish_unit, |lp, t| unsafe {
            sys::ioq_timeout_at(lp, ns, t)
        })
    }

    /// Runs `fut` until [`now`](Loop::now) reaches `deadline` at most: its output, or
    /// [`rt::Elapsed`], in which case `fut` is dropped (its operations are cancelled).
    pub fn timeout_at<F: Future>(&self, deadline: Duration, fut: F) -> rt::Timeout<F> {
        rt::Timeout::new(fut, self.sleep_until(deadline))
    }

    /// Resolves `host` and/or `service` off the loop thread. `flags`: `IOQ_RESOLVE_*`.
    pub fn resolve(
        &self,
        host: Option<&str>,
        service: Option<&str>,
        flags: u32,
    ) -> Op<Result<Vec<SocketAddr>>> {
        let conv = |s: Option<&str>| s.map(cstring).transpose();
        let (h, s) = match (conv(host), conv(service)) {
            (Ok(h), Ok(s)) => (h, s),
            _ => return Op::fail(&self.inner, Error::INVAL, None, finish_resolve),
        };
        let mut keep = Box::new(ResolveKeep {
            addrs: vec![
                sys::ioq_addr {
                    family: 0,
                    port: 0,
                    scope_id: 0,
                    ip: [0; 16]
                };
                32
            ],
            host: h,
            service: s,
        });
        let hp = keep.host.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        let sp = keep
            .service
            .as_ref()
            .map_or(std::ptr::null(), |c| c.as_ptr());
        let (ap, n) = (keep.addrs.as_mut_ptr(), keep.addrs.len() as u32);
        Op::submit(
            &self.inner,
            Some(Keep::Boxed(keep)),
            0,
            finish_resolve,
            |lp, t| unsafe { sys::ioq_resolve(lp, hp, sp, flags, ap, n, t) },
        )
    }

    /// A pool of `count` buffers of `size` bytes for pooled receives.
    pub fn pool(&self, count: u32, size: u32) -> Result<Pool> {
        let mut h = 0u64;
        check(unsafe { sys::ioq_pool_new(self.raw()?, count, size, &mut h) } as i64)?;
        Ok(Pool::new(&self.inner, h))
    }

    #[cfg(unix)]
    pub(crate) fn adopt(&self, fd: std::os::unix::io::OwnedFd, kind: u32) -> Result<Handle> {
        use std::os::unix::io::{AsRawFd, IntoRawFd};
        let raw = self.raw()?;
        let mut h = 0u64;
        check(unsafe { sys::ioq_adopt(raw, fd.as_raw_fd() as u64, kind, &mut h) } as i64)?;
        // Only now does ioq own the descriptor; on failure `fd` still closes it.
        let _ = fd.into_raw_fd();
        Ok(Handle::new(&self.inner, h))
    }

    /// Spawns a task on this loop; it runs while the loop is driven (by `block_on` or the
    /// tokio driver). Its [`rt::JoinHandle`] gives the output, or a [`rt::JoinError`] if
    /// the task panicked or was aborted.
    pub fn spawn<F>(&self, fut: F) -> rt::JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        rt::spawn_on(&self.inner, fut)
    }
}

struct ResolveKeep {
    addrs: Vec<sys::ioq_addr>,
    host: Option<CString>,
    service: Option<CString>,
}

fn finish_resolve(_: &Rc<Inner>, c: &sys::ioq_cqe, keep: Option<Keep>) -> Result<Vec<SocketAddr>> {
    if c.result < 0 {
        return Err(Error::from_code(c.result));
    }
    let k: ResolveKeep = keep.expect("addresses kept").take();
    let n = (c.result as usize).min(k.addrs.len());
    Ok(k.addrs[..n]
        .iter()
        .filter_map(|a| from_raw(a).ok())
        .collect())
}

/// Future of [`LoopRef::next_post`]: `(token, result)` of one post, or ECANCELED once
/// the loop is gone.
pub struct NextPost {
    inner: Rc<Inner>,
}

impl Future for NextPost {
    type Output = Result<(u64, i64)>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.poll_post(cx)
    }
}

/// The thread-safe side of a loop: `ioq_post` and `ioq_wake` from any thread. It stays
/// valid after the loop is gone; its calls then fail with EBADHANDLE.
#[derive(Clone)]
pub struct Remote {
    shared: Arc<driver::Shared>,
}

impl Remote {
    /// Delivers `(token, result)` to the loop's [`LoopRef::next_post`], in posting order.
    pub fn post(&self, token: u64, result: i64) -> Result<()> {
        let raw = self.shared.raw.lock().unwrap_or_else(|e| e.into_inner());
        if *raw == 0 {
            return Err(Error::BADHANDLE);
        }
        check(unsafe { sys::ioq_post(*raw as *mut sys::ioq_loop, token, result) } as i64)
            .map(|_| ())
    }

    /// Runs `f` on the loop's thread and spawns the future it makes there, as a task of
    /// the loop: the way for other threads (tokio's worker threads, for one) to use ioq,
    /// whose values stay on the loop's thread. The handle is `Send` and gives the output
    /// (which must be `Send`), or a [`rt::JoinError`] if the task panicked, was aborted, or
    /// the loop was dropped first. The loop must be running (`block_on` or the tokio
    /// driver) for the task to start.
    pub fn spawn<F, Fut>(&self, f: F) -> rt::RemoteJoinHandle<Fut::Output>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        rt::remote_spawn(&self.shared, f)
    }

    /// Makes a blocked poll of the loop return.
    pub fn wake(&self) -> Result<()> {
        let raw = self.shared.raw.lock().unwrap_or_else(|e| e.into_inner());
        if *raw == 0 {
            return Err(Error::BADHANDLE);
        }
        self.shared
            .woken
            .store(true, std::sync::atomic::Ordering::SeqCst);
        check(unsafe { sys::ioq_wake(*raw as *mut sys::ioq_loop) } as i64).map(|_| ())
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Remote")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn remote_is_send_and_sync() {
        assert_send_sync::<Remote>();
        assert_send_sync::<rt::RemoteJoinHandle<u32>>();
        assert_send_sync::<rt::JoinError>();
    }

    #[test]
    fn version_matches_header() {
        assert_eq!(version() / 10000, sys::IOQ_VERSION_MAJOR);
        assert!(version_string().starts_with(&format!("{}.", sys::IOQ_VERSION_MAJOR)));
    }

    #[test]
    fn loop_reports_backend() {
        let lp = Loop::new().unwrap();
        assert!(["epoll", "io_uring", "kqueue", "iocp"].contains(&lp.backend()));
        assert!(lp.now() > Duration::from_nanos(0));
        let r = lp.handle();
        drop(lp);
        assert_eq!(r.backend(), "");
        assert_eq!(
            r.tcp_listen("127.0.0.1:0".parse().unwrap()).err(),
            Some(Error::BADHANDLE)
        );
    }

    #[test]
    fn unknown_backend_is_an_error_not_a_crash() {
        // kqueue and IOCP are not built on Linux, epoll not on the others.
        let r = if cfg!(target_os = "linux") {
            Loop::with_backend(Backend::Iocp)
        } else {
            Loop::with_backend(Backend::Epoll)
        };
        assert_eq!(r.err(), Some(Error::NOTSUP));
    }
}
