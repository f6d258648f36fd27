//! TCP echo servers for the Rust rows of `make bench` (tests/bench/bench.sh), one per way
//! of running Rust I/O, all with 16 KiB buffers and one task per connection:
//!
//!   bench_echo MODE ADDR:PORT
//!
//! - `ioq`: ioq's own runtime (`ioq::rt`), owned buffers (no copy);
//! - `ioq-traits`: ioq's runtime, futures-io's AsyncRead/AsyncWrite (one copy each way);
//! - `ioq-tokio`: a current_thread tokio runtime with ioq's driver, connections as tokio
//!   tasks (`spawn_local`) awaiting ioq's owned-buffer operations;
//! - `ioq-tokio-traits`: the same with tokio's AsyncRead/AsyncWrite on the ioq streams;
//! - `ioq-tokio-task`: as `ioq-tokio`, but the driver is a `LocalSet` task of its own
//!   (`spawn_local(Driver::new(..))`) instead of the runtime's main future;
//! - `tokio`: tokio's own TcpListener/TcpStream on a current_thread runtime (the peer).
//!
//! The ioq modes honour IOQ_BACKEND. Prints "listening on ADDR" once it accepts.

use std::net::SocketAddr;

use ioq::rt;

const BUF: usize = 16 * 1024;

async fn echo_owned(conn: ioq::TcpStream) {
    let mut buf = Vec::with_capacity(BUF);
    loop {
        let (r, b) = conn.recv(buf).await;
        match r {
            Ok(n) if n > 0 => {}
            _ => return,
        }
        let (r, b) = conn.send(b).await;
        if r.is_err() {
            return;
        }
        buf = b;
    }
}

async fn echo_futures_io(mut conn: ioq::TcpStream) {
    use futures_util::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; BUF];
    loop {
        match conn.read(&mut buf).await {
            Ok(n) if n > 0 => {
                if conn.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}

async fn echo_tokio_io<S>(mut conn: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; BUF];
    loop {
        match conn.read(&mut buf).await {
            Ok(n) if n > 0 => {
                if conn.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}

fn ioq_listener(addr: SocketAddr) -> ioq::TcpListener {
    let lp = rt::current();
    let l = lp.tcp_listen(addr).expect("listen");
    println!(
        "listening on {} ({})",
        l.local_addr().unwrap(),
        lp.backend()
    );
    l
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mode, addr) = match (args.next(), args.next()) {
        (Some(m), Some(a)) => (m, a),
        _ => {
            eprintln!(
                "usage: bench_echo ioq|ioq-traits|ioq-tokio|ioq-tokio-traits|ioq-tokio-task|tokio \
                 ADDR:PORT"
            );
            std::process::exit(2);
        }
    };
    let addr: SocketAddr = addr.parse().expect("ADDR:PORT");
    match mode.as_str() {
        "ioq" | "ioq-traits" => rt::block_on(async move {
            let l = ioq_listener(addr);
            loop {
                if let Ok(c) = l.accept().await {
                    if mode == "ioq" {
                        rt::spawn(echo_owned(c));
                    } else {
                        rt::spawn(echo_futures_io(c));
                    }
                }
            }
        }),
        "ioq-tokio" | "ioq-tokio-traits" => {
            let set = tokio::task::LocalSet::new();
            set.block_on(
                &current_thread(),
                ioq::tokio::run(async move {
                    let l = ioq_listener(addr);
                    loop {
                        if let Ok(c) = l.accept().await {
                            if mode == "ioq-tokio" {
                                tokio::task::spawn_local(echo_owned(c));
                            } else {
                                tokio::task::spawn_local(echo_tokio_io(c));
                            }
                        }
                    }
                }),
            )
        }
        "ioq-tokio-task" => {
            // The driver as a LocalSet task of its own rather than the runtime's main future.
            let set = tokio::task::LocalSet::new();
            set.block_on(&current_thread(), async move {
                let lp = ioq::Loop::with_host_flush(ioq::Backend::Auto).expect("loop");
                let r = lp.handle();
                tokio::task::spawn_local(ioq::tokio::Driver::new(&r).expect("driver"));
                let l = r.tcp_listen(addr).expect("listen");
                println!("listening on {} ({})", l.local_addr().unwrap(), r.backend());
                loop {
                    if let Ok(c) = l.accept().await {
                        tokio::task::spawn_local(echo_owned(c));
                    }
                }
            })
        }
        "tokio" => current_thread().block_on(async move {
            let l = tokio::net::TcpListener::bind(addr).await.expect("listen");
            println!("listening on {} (tokio)", l.local_addr().unwrap());
            loop {
                if let Ok((c, _)) = l.accept().await {
                    tokio::spawn(echo_tokio_io(c));
                }
            }
        }),
        _ => {
            eprintln!("bench_echo: unknown mode {}", mode);
            std::process::exit(2);
        }
    }
}
