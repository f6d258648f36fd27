//! The std-only executor: spawn, join, and an echo server with 100 connections.

use std::net::SocketAddr;

use ioq::{rt, TcpStream};

async fn echo(conn: TcpStream) -> ioq::Result<usize> {
    let mut total = 0;
    let mut buf = Vec::with_capacity(4096);
    loop {
        let (r, b) = conn.recv(buf).await;
        let n = r?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
        let (r, b) = conn.send(b).await;
        r?;
        buf = b;
    }
}

async fn client(addr: SocketAddr, i: usize) -> ioq::Result<()> {
    let conn = rt::current().connect(addr).await?;
    let msg: Vec<u8> = (0..1000 + i).map(|k| (k * 7 + i) as u8).collect();
    let (r, msg) = conn.send(msg).await;
    r?;
    let mut got = Vec::new();
    while got.len() < msg.len() {
        let (r, b) = conn.recv(Vec::with_capacity(4096)).await;
        if r? == 0 {
            break;
        }
        got.extend_from_slice(&b);
    }
    assert_eq!(got, msg, "client {} got its bytes back", i);
    conn.shutdown().await?;
    let (r, _) = conn.recv(Vec::with_capacity(16)).await;
    assert_eq!(r, Ok(0));
    conn.close().await
}

#[test]
fn echo_with_100_connections() {
    const N: usize = 100;
    rt::block_on(async {
        let lp = rt::current();
        let l = lp.tcp_listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let server = rt::spawn(async move {
            let mut handlers = Vec::new();
            for _ in 0..N {
                let conn = l.accept().await.unwrap();
                handlers.push(rt::spawn(echo(conn)));
            }
            let mut total = 0;
            for h in handlers {
                total += h.await.unwrap().unwrap();
            }
            total
        });
        let clients: Vec<_> = (0..N).map(|i| rt::spawn(client(addr, i))).collect();
        for c in clients {
            c.await.unwrap().unwrap();
        }
        let expect: usize = (0..N).map(|i| 1000 + i).sum();
        assert_eq!(server.await.unwrap(), expect);
        assert_eq!(lp.in_flight(), 0, "nothing left in flight");
    });
}

#[test]
fn spawn_join_and_nested_spawn() {
    let v = rt::block_on(async {
        let h = rt::spawn(async {
            let inner = rt::spawn(async { 20 });
            inner.await.unwrap() + 1
        });
        h.await.unwrap() * 2
    });
    assert_eq!(v, 42);
}

#[test]
fn wakers_from_other_threads_wake_the_loop() {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Waker};

    struct Shared {
        done: bool,
        waker: Option<Waker>,
    }
    struct Wait(Arc<Mutex<Shared>>);
    impl Future for Wait {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let mut s = self.0.lock().unwrap();
            if s.done {
                return Poll::Ready(());
            }
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
    let st = Arc::new(Mutex::new(Shared {
        done: false,
        waker: None,
    }));
    let st2 = st.clone();
    rt::block_on(async move {
        let t = std::thread::spawn(move || loop {
            let mut s = st2.lock().unwrap();
            if let Some(w) = s.waker.take() {
                s.done = true;
                drop(s);
                w.wake();
                return;
            }
            drop(s);
            std::thread::yield_now();
        });
        Wait(st).await;
        t.join().unwrap();
    });
}

#[test]
fn join_handle_of_a_task_dropped_with_the_loop() {
    let lp = ioq::Loop::new().unwrap();
    let h = lp.spawn(async { std::future::pending::<()>().await });
    lp.block_on(async {
        rt::current()
            .sleep(std::time::Duration::from_millis(1))
            .await
    })
    .unwrap();
    let other = ioq::Loop::new().unwrap();
    drop(lp);
    assert!(other.block_on(h).unwrap_err().is_cancelled());
}

#[test]
fn spawning_on_a_dropped_loop_reports_ecanceled() {
    let lp = ioq::Loop::new().unwrap();
    let r = lp.handle();
    drop(lp);
    let h = r.spawn(async { 1 });
    assert!(h.is_finished());
    assert!(rt::block_on(h).unwrap_err().is_cancelled());
}
