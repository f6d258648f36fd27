//! TCP echo server: `cargo run --example echo_server [ADDR]` (default 127.0.0.1:7000).
//! Each connection is a task whose code reads like blocking code; the buffer moves into
//! each operation and comes back with its result.

use std::net::SocketAddr;

use ioq::rt;

async fn serve(conn: ioq::TcpStream) -> ioq::Result<()> {
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let (res, b) = conn.recv(buf).await;
        if res? == 0 {
            return conn.close().await;
        }
        let (res, b) = conn.send(b).await;
        res?;
        buf = b;
    }
}

fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into())
        .parse()
        .expect("usage: echo_server [ADDR:PORT]");
    rt::block_on(async move {
        let lp = rt::current();
        let listener = lp.tcp_listen(addr).expect("listen");
        println!(
            "echo server on {} ({})",
            listener.local_addr().unwrap(),
            lp.backend()
        );
        loop {
            match listener.accept().await {
                Ok(conn) => {
                    rt::spawn(async move {
                        if let Err(e) = serve(conn).await {
                            eprintln!("connection: {}", e);
                        }
                    });
                }
                Err(e) => eprintln!("accept: {}", e),
            }
        }
    });
}
