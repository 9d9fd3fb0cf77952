//! WebSub pings against a tiny HTTP listener on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use herald_feed::{PingError, ping_hub};

/// Serve `answers.len()` requests, answering each with the given status; send
/// back each request's first line and body.
fn hub(answers: Vec<u16>) -> (String, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hub", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for status in answers {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .unwrap();
            tx.send((
                first.trim_end().to_string(),
                String::from_utf8(body).unwrap(),
            ))
            .unwrap();
        }
    });
    (url, rx)
}

#[test]
fn pings_the_hub_once_per_topic() {
    let (url, rx) = hub(vec![204, 202]);
    let topics = vec![
        "https://statements.example.org/en/atom.xml".to_string(),
        "https://statements.example.org/en/topics/human-rights/rss.xml".to_string(),
    ];
    ping_hub(&url, &topics, Duration::from_secs(5)).unwrap();
    let (line, body) = rx.recv().unwrap();
    assert_eq!(line, "POST /hub HTTP/1.1");
    assert_eq!(
        body,
        "hub.mode=publish&hub.url=https%3A%2F%2Fstatements.example.org%2Fen%2Fatom.xml\
         &hub.topic=https%3A%2F%2Fstatements.example.org%2Fen%2Fatom.xml"
    );
    let (_, body) = rx.recv().unwrap();
    assert!(
        body.contains(
            "hub.url=https%3A%2F%2Fstatements.example.org%2Fen%2Ftopics%2Fhuman-rights%2Frss.xml"
        ),
        "{body}"
    );
}

#[test]
fn a_refusing_hub_is_an_error() {
    let (url, _rx) = hub(vec![500]);
    let err = ping_hub(
        &url,
        &["https://x.example/en/atom.xml".into()],
        Duration::from_secs(5),
    )
    .unwrap_err();
    assert!(
        matches!(err, PingError::Status { status: 500, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("answered 500"), "{err}");
}

#[test]
fn a_silent_hub_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    // Accept and never answer.
    let keep = thread::spawn(move || {
        let conn = listener.accept();
        thread::sleep(Duration::from_secs(3));
        drop(conn);
    });
    let start = Instant::now();
    let err = ping_hub(
        &url,
        &["https://x.example/en/atom.xml".into()],
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(err, PingError::Transport { .. }), "{err}");
    drop(keep);
}

#[test]
fn no_hub_listening_is_an_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let err = ping_hub(
        &url,
        &["https://x.example/en/atom.xml".into()],
        Duration::from_secs(2),
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot reach WebSub hub"), "{err}");
}
