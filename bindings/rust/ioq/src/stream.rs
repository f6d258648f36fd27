//! The reader and writer adapters of the streams: `AsyncRead`, `AsyncBufRead` and
//! `AsyncWrite` of futures-io (feature `futures-io`) and of tokio (feature `tokio`) for
//! `TcpStream` and `LocalStream`.
//!
//! ioq's receives and sends own their buffer until their final completion, while these
//! traits lend the caller's slice for one call only. So each direction of a stream has one
//! internal buffer that the operation owns, and the adapters copy:
//! - reading receives into the read buffer (`READ_BUF` bytes, allocated at the first read)
//!   and copies out as much as the caller asks for; the rest stays for the next read
//!   (`AsyncBufRead` hands out the buffer itself, without that copy);
//! - writing copies the caller's bytes into the write buffer (up to `WRITE_MAX` per call)
//!   and submits the send at once, so `poll_write` returns `Ready(n)` without waiting for
//!   the kernel; the next write (or a flush) waits for that send and reports its error.
//!   Dropping or closing the stream lets that send finish before the handle closes, so
//!   bytes that a write accepted are not lost (a receive still pending is cancelled).
//!
//! The owned-buffer operations (`recv`, `send`, pools) have no copy; the adapters cost one
//! `memcpy` per direction, measured by the Rust rows of `make bench`.

// Without either feature nothing calls the adapters.
#![cfg_attr(not(any(feature = "futures-io", feature = "tokio")), allow(dead_code))]

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use ioq_sys as sys;

use crate::error::Result;
use crate::handle::Handle;
use crate::op::Op;

/// Size of a stream's read buffer.
pub(crate) const READ_BUF: usize = 16 * 1024;
/// Most bytes one write takes (the write buffer grows up to this).
pub(crate) const WRITE_MAX: usize = 64 * 1024;

macro_rules! ready {
    ($e:expr) => {
        match $e {
            Poll::Ready(v) => v,
            Poll::Pending => return Poll::Pending,
        }
    };
}

type BufOp = Op<(Result<usize>, Vec<u8>)>;

enum Rd {
    Idle(Vec<u8>),
    Busy(BufOp),
    /// Received bytes, and how many of them the caller took already.
    Data(Vec<u8>, usize),
    Eof,
}

enum Wr {
    Idle(Vec<u8>),
    Busy(BufOp),
    Shut(Op<Result<()>>),
    Done,
}

/// The adapters' state of one stream.
pub(crate) struct StreamIo {
    rd: Rd,
    wr: Wr,
}

impl Default for StreamIo {
    fn default() -> StreamIo {
        StreamIo {
            rd: Rd::Idle(Vec::new()),
            wr: Wr::Idle(Vec::new()),
        }
    }
}

impl StreamIo {
    /// The buffered bytes, receiving first when there are none; empty at end of stream.
    pub(crate) fn poll_fill(
        &mut self,
        h: &Handle,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<&[u8]>> {
        loop {
            match &mut self.rd {
                Rd::Data(b, pos) => {
                    if *pos < b.len() {
                        break;
                    }
                    let b = std::mem::take(b);
                    self.rd = Rd::Idle(b);
                }
                Rd::Eof => break,
                Rd::Idle(b) => {
                    let mut b = std::mem::take(b);
                    b.clear();
                    b.reserve_exact(READ_BUF);
                    self.rd = Rd::Busy(h.recv(b));
                }
                Rd::Busy(op) => match ready!(Pin::new(op).poll(cx)) {
                    (Ok(0), _) => self.rd = Rd::Eof,
                    (Ok(_), b) => self.rd = Rd::Data(b, 0),
                    (Err(e), b) => {
                        self.rd = Rd::Idle(b);
                        return Poll::Ready(Err(e.into()));
                    }
                },
            }
        }
        match &self.rd {
            Rd::Data(b, pos) => Poll::Ready(Ok(&b[*pos..])),
            _ => Poll::Ready(Ok(&[])),
        }
    }

    pub(crate) fn consume(&mut self, n: usize) {
        if let Rd::Data(b, pos) = &mut self.rd {
            *pos = (*pos + n).min(b.len());
        }
    }

    /// Copies buffered bytes into `out` (receiving first when there are none).
    #[cfg(feature = "futures-io")]
    pub(crate) fn poll_read(
        &mut self,
        h: &Handle,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let avail = ready!(self.poll_fill(h, cx))?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Poll::Ready(Ok(n))
    }

    /// Waits for the send in flight, if any; its error, if it failed.
    fn poll_sent(&mut self, h: &Handle, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Wr::Busy(op) = &mut self.wr {
            let (r, b) = ready!(Pin::new(op).poll(cx));
            h.linger.set(0);
            self.wr = Wr::Idle(b);
            r?;
        }
        Poll::Ready(Ok(()))
    }

    pub(crate) fn poll_write(
        &mut self,
        h: &Handle,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_sent(h, cx))?;
        let mut b = match &mut self.wr {
            Wr::Idle(b) => std::mem::take(b),
            _ => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "ioq: write after the stream was shut down",
                )))
            }
        };
        b.clear();
        for s in bufs {
            let k = s.len().min(WRITE_MAX - b.len());
            b.extend_from_slice(&s[..k]);
            if b.len() == WRITE_MAX {
                break;
            }
        }
        let n = b.len();
        if n == 0 {
            self.wr = Wr::Idle(b);
            return Poll::Ready(Ok(0));
        }
        let mut op = h.send(b);
        match op.token() {
            Some(t) => {
                h.linger.set(t);
                self.wr = Wr::Busy(op);
                Poll::Ready(Ok(n))
            }
            None => {
                // Refused at submission: the result is already in the future.
                let (r, b) = ready!(Pin::new(&mut op).poll(cx));
                self.wr = Wr::Idle(b);
                Poll::Ready(r.map(|_| n).map_err(Into::into))
            }
        }
    }

    pub(crate) fn poll_flush(&mut self, h: &Handle, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_sent(h, cx)
    }

    /// Flushes, then half-closes the write side (`ioq_shutdown`); once done it stays done.
    pub(crate) fn poll_shutdown(
        &mut self,
        h: &Handle,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match &mut self.wr {
                Wr::Busy(_) => ready!(self.poll_sent(h, cx))?,
                Wr::Idle(_) => self.wr = Wr::Shut(h.simple(sys::ioq_shutdown)),
                Wr::Shut(op) => {
                    let r = ready!(Pin::new(op).poll(cx));
                    self.wr = Wr::Done;
                    return Poll::Ready(r.map_err(Into::into));
                }
                Wr::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(feature = "futures-io")]
macro_rules! futures_io_impls {
    ($t:ty) => {
        impl futures_io::AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                let this = self.get_mut();
                this.io.poll_read(&this.h, cx, buf)
            }
        }

        impl futures_io::AsyncBufRead for $t {
            fn poll_fill_buf(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<&[u8]>> {
                let this = self.get_mut();
                this.io.poll_fill(&this.h, cx)
            }

            fn consume(self: Pin<&mut Self>, amt: usize) {
                self.get_mut().io.consume(amt)
            }
        }

        impl futures_io::AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let this = self.get_mut();
                this.io.poll_write(&this.h, cx, &[IoSlice::new(buf)])
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let this = self.get_mut();
                this.io.poll_write(&this.h, cx, bufs)
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let this = self.get_mut();
                this.io.poll_flush(&this.h, cx)
            }

            /// Flushes and half-closes the write side; the handle stays open for reading
            /// (the inherent `close` closes it).
            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let this = self.get_mut();
                this.io.poll_shutdown(&this.h, cx)
            }
        }
    };
}

#[cfg(feature = "futures-io")]
futures_io_impls!(crate::TcpStream);
#[cfg(feature = "futures-io")]
futures_io_impls!(crate::LocalStream);

#[cfg(feature = "tokio")]
macro_rules! tokio_impls {
    ($t:ty) => {
        impl ::tokio::io::AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ::tokio::io::ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                if buf.remaining() == 0 {
                    return Poll::Ready(Ok(()));
                }
                let this = self.get_mut();
                let avail = ready!(this.io.poll_fill(&this.h, cx))?;
                let n = avail.len().min(buf.remaining());
                buf.put_slice(&avail[..n]);
                this.io.consume(n);
                Poll::Ready(Ok(()))
            }
        }

        impl ::tokio::io::AsyncBufRead for $t {
            fn poll_fill_buf(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<&[u8]>> {
                let this = self.get_mut();
                this.io.poll_fill(&this.h, cx)
            }

            fn consume(self: Pin<&mut Self>, amt: usize) {
                self.get_mut().io.consume(amt)
            }
        }

        impl ::tokio::io::AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let this = self.get_mut();
                this.io.poll_write(&this.h, cx, &[IoSlice::new(buf)])
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let this = self.get_mut();
                this.io.poll_write(&this.h, cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let this = self.get_mut();
                this.io.poll_flush(&this.h, cx)
            }

            /// Flushes and half-closes the write side (`ioq_shutdown`).
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let this = self.get_mut();
                this.io.poll_shutdown(&this.h, cx)
            }
        }
    };
}

#[cfg(feature = "tokio")]
tokio_impls!(crate::TcpStream);
#[cfg(feature = "tokio")]
tokio_impls!(crate::LocalStream);
