//! Slow clients held open during the load: each thread keeps one connection in one
//! of the slow shapes (idle, headers dripped, a body dripped, a body announced and
//! never sent, a kept-alive connection left idle) and opens it again whenever the
//! server closes it, until the bench is done.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub struct Slow {
    stop: Arc<AtomicBool>,
    closed: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

const SHAPES: [&[u8]; 5] = [
    b"",
    b"GET /en/ HTTP/1.1\r\nHost: x\r\nX-Slow: ",
    b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n",
    b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
    b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n",
];

impl Slow {
    /// Hold `n` slow connections to `addr`.
    pub fn hold(addr: SocketAddr, n: usize) -> Slow {
        let stop = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicU64::new(0));
        let threads = (0..n)
            .map(|i| {
                let (stop, closed) = (stop.clone(), closed.clone());
                std::thread::spawn(move || {
                    let shape = SHAPES[i % SHAPES.len()];
                    // Dripping shapes send one more byte every 2 s.
                    let drips = matches!(i % SHAPES.len(), 1 | 2);
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut s) = TcpStream::connect(addr) else {
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        };
                        if s.write_all(shape).is_err() {
                            closed.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let mut open = true;
                        while open && !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(200));
                            if drips {
                                open = s.write_all(b"a").is_ok();
                            }
                            let mut probe = [0u8; 1024];
                            s.set_nonblocking(true).ok();
                            match std::io::Read::read(&mut s, &mut probe) {
                                Ok(0) => open = false,
                                Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {
                                    open = false
                                }
                                _ => {}
                            }
                            s.set_nonblocking(false).ok();
                        }
                        if !open {
                            closed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Slow {
            stop,
            closed,
            threads,
        }
    }

    /// How many times the server closed one of them.
    pub fn closed(&self) -> u64 {
        self.closed.load(Ordering::Relaxed)
    }
}

impl Drop for Slow {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
