//! Sockets, listeners and files: typed handles with owned-buffer operations.

use std::net::SocketAddr;

use ioq_sys as sys;

use crate::buf::{IoBuf, IoBufMut};
use crate::error::Result;
use crate::handle::{FromHandle, Handle, RecvPoolMulti};
use crate::op::{MultiOp, Op};
use crate::pool::{Pool, PoolBuf};

macro_rules! handle_type {
    ($(#[$m:meta])* $name:ident $(, $io:ident)?) => {
        $(#[$m])*
        pub struct $name {
            pub(crate) h: Handle,
            $(
            #[cfg_attr(not(any(feature = "futures-io", feature = "tokio")), allow(dead_code))]
            pub(crate) $io: crate::stream::StreamIo,
            )?
        }

        impl FromHandle for $name {
            fn from_handle(h: Handle) -> Self {
                $name { h, $($io: Default::default(),)? }
            }
        }

        impl $name {
            /// Closes the handle; operations pending on it complete with ECANCELED first.
            /// (Dropping the value closes it too, without waiting.)
            pub fn close(self) -> Op<Result<()>> {
                self.h.close()
            }

            /// The raw ioq handle (for logging; it stays owned by this value).
            pub fn raw_handle(&self) -> u64 {
                self.h.h
            }

            /// The OS descriptor behind the handle, still owned by ioq.
            pub fn os_handle(&self) -> Result<u64> {
                self.h.os_handle()
            }

            /// Brings an OS descriptor into the loop; ioq owns (and closes) it from now on.
            #[cfg(unix)]
            pub fn adopt(lp: &crate::LoopRef, fd: std::os::unix::io::OwnedFd) -> Result<$name> {
                lp.adopt(fd, Self::KIND).map(<$name as FromHandle>::from_handle)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.h.h)
            }
        }
    };
}

macro_rules! stream_ops {
    ($name:ident) => {
        impl $name {
            /// One receive into the buffer's whole capacity; `Ok(0)` is end of stream.
            pub fn recv<B: IoBufMut>(&self, buf: B) -> Op<(Result<usize>, B)> {
                self.h.recv(buf)
            }

            /// Sends every initialized byte of the buffer; sends on one stream never
            /// interleave, so several may be in flight.
            pub fn send<B: IoBuf>(&self, buf: B) -> Op<(Result<usize>, B)> {
                self.h.send(buf)
            }

            /// Gather send of every buffer, in order.
            pub fn sendv<B: IoBuf>(&self, bufs: Vec<B>) -> Op<(Result<usize>, Vec<B>)> {
                self.h.sendv(bufs)
            }

            /// Receives into a pool buffer taken only when data arrives; `Ok(None)` is end
            /// of stream, ENOBUFS an empty pool (the data stays in the socket).
            pub fn recv_pool(&self, pool: &Pool) -> Op<Result<Option<PoolBuf>>> {
                self.h.recv_pool(pool)
            }

            /// Multishot pooled receive.
            pub fn recv_pool_multi(&self, pool: &Pool) -> RecvPoolMulti {
                self.h.recv_pool_multi(pool)
            }

            /// Half-closes the write side after every send submitted before.
            pub fn shutdown(&self) -> Op<Result<()>> {
                self.h.simple(sys::ioq_shutdown)
            }
        }
    };
}

handle_type!(
    /// A listening TCP socket.
    TcpListener
);
handle_type!(
    /// A connected TCP stream.
    ///
    /// Besides its owned-buffer operations it implements `futures_io::AsyncRead`,
    /// `AsyncBufRead` and `AsyncWrite` (feature `futures-io`) and tokio's traits of the same
    /// names (feature `tokio`), through one internal buffer per direction; see the crate
    /// documentation for what that costs. Dropping or closing the stream lets a send that
    /// `poll_write` accepted finish first; receives still pending are cancelled.
    TcpStream,
    io
);
handle_type!(
    /// A bound UDP socket.
    UdpSocket
);
handle_type!(
    /// A listening AF_UNIX stream socket (a named pipe on Windows).
    LocalListener
);
handle_type!(
    /// A connected AF_UNIX stream (a named pipe on Windows). It implements the same
    /// reader and writer traits as [`TcpStream`].
    LocalStream,
    io
);
handle_type!(
    /// A regular file with positional reads and writes that never block the loop.
    File
);

impl TcpListener {
    const KIND: u32 = sys::IOQ_KIND_TCP_LISTENER;

    pub fn accept(&self) -> Op<Result<TcpStream>> {
        self.h.accept()
    }

    /// Keeps accepting until cancelled or dropped; the last item is usually ECANCELED.
    pub fn incoming(&self) -> MultiOp<Result<TcpStream>> {
        self.h.accept_multi()
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.h.addr(sys::ioq_sockname)
    }
}

impl TcpStream {
    const KIND: u32 = sys::IOQ_KIND_TCP;

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.h.addr(sys::ioq_sockname)
    }

    pub fn peer_addr(&self) -> Result<SocketAddr> {
        self.h.addr(sys::ioq_peername)
    }

    pub fn set_nodelay(&self, on: bool) -> Result<()> {
        self.h.setopt(sys::IOQ_OPT_NODELAY, on as i64)
    }

    /// Sets an `IOQ_OPT_*` option (see `ioq_sys`).
    pub fn set_option(&self, opt: u32, value: i64) -> Result<()> {
        self.h.setopt(opt, value)
    }
}
stream_ops!(TcpStream);

impl LocalListener {
    const KIND: u32 = sys::IOQ_KIND_LOCAL_LISTENER;

    pub fn accept(&self) -> Op<Result<LocalStream>> {
        self.h.accept()
    }

    pub fn incoming(&self) -> MultiOp<Result<LocalStream>> {
        self.h.accept_multi()
    }
}

impl LocalStream {
    const KIND: u32 = sys::IOQ_KIND_LOCAL;
}
stream_ops!(LocalStream);

impl UdpSocket {
    const KIND: u32 = sys::IOQ_KIND_UDP;

    /// One datagram of every initialized byte of the buffer.
    pub fn send_to<B: IoBuf>(&self, buf: B, to: SocketAddr) -> Op<(Result<usize>, B)> {
        self.h.send_to(buf, to)
    }

    /// One datagram (truncated to the buffer's capacity) and its sender.
    pub fn recv_from<B: IoBufMut>(&self, buf: B) -> Op<(Result<(usize, SocketAddr)>, B)> {
        self.h.recv_from(buf)
    }

    pub fn recv<B: IoBufMut>(&self, buf: B) -> Op<(Result<usize>, B)> {
        self.h.recv(buf)
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.h.addr(sys::ioq_sockname)
    }

    pub fn set_broadcast(&self, on: bool) -> Result<()> {
        self.h.setopt(sys::IOQ_OPT_BROADCAST, on as i64)
    }
}

impl File {
    const KIND: u32 = sys::IOQ_KIND_FILE;

    /// Reads up to the buffer's capacity at `offset`; `Ok(0)` at end of file.
    pub fn read_at<B: IoBufMut>(&self, buf: B, offset: u64) -> Op<(Result<usize>, B)> {
        self.h.read_at(buf, offset)
    }

    /// Writes every initialized byte of the buffer at `offset`.
    pub fn write_at<B: IoBuf>(&self, buf: B, offset: u64) -> Op<(Result<usize>, B)> {
        self.h.write_at(buf, offset)
    }

    pub fn sync_all(&self) -> Op<Result<()>> {
        self.h.simple(sys::ioq_fsync)
    }
}

/// How to open a file (`IOQ_OPEN_*`), in the style of `std::fs::OpenOptions`.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub(crate) flags: u32,
    pub(crate) mode: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    pub fn new() -> OpenOptions {
        OpenOptions {
            flags: 0,
            mode: 0o644,
        }
    }
    fn set(mut self, flag: u32, on: bool) -> Self {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
        self
    }
    pub fn read(self, on: bool) -> Self {
        self.set(sys::IOQ_OPEN_READ, on)
    }
    pub fn write(self, on: bool) -> Self {
        self.set(sys::IOQ_OPEN_WRITE, on)
    }
    pub fn create(self, on: bool) -> Self {
        self.set(sys::IOQ_OPEN_CREATE, on)
    }
    pub fn truncate(self, on: bool) -> Self {
        self.set(sys::IOQ_OPEN_TRUNC, on)
    }
    pub fn append(self, on: bool) -> Self {
        self.set(sys::IOQ_OPEN_APPEND, on)
    }
    pub fn create_new(self, on: bool) -> Self {
        self.set(sys::IOQ_OPEN_EXCL | sys::IOQ_OPEN_CREATE, on)
    }
    /// Unix permission bits for a created file (default 0o644).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
}
