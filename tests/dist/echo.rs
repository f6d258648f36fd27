//! An echo round trip through the packaged ioq crates (ioq over ioq-sys), as the main.rs
//! of a fresh consumer crate. Prints "rust: echo ok: <line> (backend <name>, ioq <version>)".

fn main() {
    let lp = ioq::Loop::new().expect("loop");
    let listener = lp
        .tcp_listen("127.0.0.1:0".parse().unwrap())
        .expect("listen");
    let addr = listener.local_addr().expect("local address");
    let line = b"hello through ioq".to_vec();
    let got = lp.block_on(async {
        let accept = listener.accept();
        let client = lp.connect(addr).await.expect("connect");
        let server = accept.await.expect("accept");
        let (res, _) = client.send(line.clone()).await;
        res.expect("client send");
        let (res, buf) = server.recv(Vec::with_capacity(64)).await;
        res.expect("server recv");
        let (res, _) = server.send(buf).await;
        res.expect("server send");
        let (res, buf) = client.recv(Vec::with_capacity(64)).await;
        res.expect("client recv");
        buf
    });
    if got != line {
        eprintln!("rust: echo differs: {:?}", String::from_utf8_lossy(&got));
        std::process::exit(1);
    }
    println!(
        "rust: echo ok: {} (backend {}, ioq {})",
        String::from_utf8_lossy(&got),
        lp.backend(),
        ioq::version_string()
    );
}
