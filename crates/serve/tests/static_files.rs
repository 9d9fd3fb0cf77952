//! Static files and connections, over real sockets: keep-alive, conditional
//! requests, HEAD, byte ranges, compression, the cache policy, same-origin
//! redirects, symbolic links, slow clients and the connection bound.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const PDF: &str = "en/2014/world-day-against-trafficking/world-day-against-trafficking.en.pdf";

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii").to_string())
        .unwrap_or_default()
}

/// One HTTP/1.1 response read off a raw socket: (head, body).
fn read_response(s: &mut TcpStream) -> (String, Vec<u8>, usize) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let mut reads = 0;
    loop {
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "connection closed mid-response");
        reads += 1;
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("content-length");
            if buf.len() >= end + 4 + len {
                let body = buf[end + 4..end + 4 + len].to_vec();
                return (head, body, reads);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_alive_client_gets_two_files_on_one_connection_each_in_one_write() {
    let p = Project::new("");
    let run = start(&p).await;
    let addr = run.addr;
    let p_root = p.root().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        for path in ["style.css", "en/index.html"] {
            let url = if path.ends_with("index.html") {
                "/en/"
            } else {
                "/style.css"
            };
            write!(s, "GET {url} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
            let (head, body, reads) = read_response(&mut s);
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert_eq!(
                body,
                std::fs::read(p_root.join("public").join(path)).expect("file")
            );
            // Headers and body leave in one write: nothing waits for a delayed ACK
            // between them, whatever Nagle would have done.
            assert_eq!(reads, 1, "{path}: the response came in {reads} reads");
        }
    })
    .await
    .expect("client");
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_requests_answer_304_and_a_rewrite_changes_only_its_etag() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    let css = c.get(run.url("/style.css")).send().await.expect("GET");
    assert_eq!(css.status(), 200);
    let etag = header(&css, "etag");
    let modified = header(&css, "last-modified");
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
    assert!(!modified.is_empty());
    assert_eq!(header(&css, "cache-control"), "no-cache");
    let page = c.get(run.url("/en/")).send().await.expect("GET");
    let page_etag = header(&page, "etag");
    assert_ne!(etag, page_etag);

    let by_etag = c
        .get(run.url("/style.css"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(by_etag.status(), 304);
    assert_eq!(header(&by_etag, "etag"), etag);
    assert!(by_etag.bytes().await.expect("body").is_empty());
    let by_date = c
        .get(run.url("/style.css"))
        .header("if-modified-since", &modified)
        .send()
        .await
        .expect("GET");
    assert_eq!(by_date.status(), 304);
    // If-None-Match wins over If-Modified-Since.
    let other = c
        .get(run.url("/style.css"))
        .header("if-none-match", "\"0000\"")
        .header("if-modified-since", &modified)
        .send()
        .await
        .expect("GET");
    assert_eq!(other.status(), 200);

    // A publish rewrites the page (a new file renamed into place) and the stylesheet
    // with the same bytes: only the page's ETag changes.
    let same = p.public("style.css");
    let tmp = p.root().join("public/.style.tmp");
    std::fs::write(&tmp, &same).expect("write");
    std::fs::rename(&tmp, p.root().join("public/style.css")).expect("rename");
    let mut html = p.public("en/index.html");
    html.extend_from_slice(b"\n<!-- corrected -->\n");
    let tmp = p.root().join("public/en/.index.tmp");
    std::fs::write(&tmp, &html).expect("write");
    std::fs::rename(&tmp, p.root().join("public/en/index.html")).expect("rename");
    let css2 = c.get(run.url("/style.css")).send().await.expect("GET");
    assert_eq!(header(&css2, "etag"), etag);
    let page2 = c
        .get(run.url("/en/"))
        .header("if-none-match", &page_etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(page2.status(), 200, "the changed page is sent again");
    assert_ne!(header(&page2, "etag"), page_etag);
    assert_eq!(page2.bytes().await.expect("body").as_ref(), html.as_slice());
}

#[tokio::test(flavor = "multi_thread")]
async fn head_and_byte_ranges_of_a_pdf() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    let pdf = p.public(PDF);
    let head = c.head(run.url(PDF)).send().await.expect("HEAD");
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length"), pdf.len().to_string());
    assert_eq!(header(&head, "accept-ranges"), "bytes");
    assert_eq!(header(&head, "content-type"), "application/pdf");
    let etag = header(&head, "etag");
    assert!(head.bytes().await.expect("body").is_empty());

    let part = c
        .get(run.url(PDF))
        .header("range", "bytes=100-199")
        .send()
        .await
        .expect("GET");
    assert_eq!(part.status(), 206);
    assert_eq!(
        header(&part, "content-range"),
        format!("bytes 100-199/{}", pdf.len())
    );
    assert_eq!(part.bytes().await.expect("body").as_ref(), &pdf[100..200]);

    let tail = c
        .get(run.url(PDF))
        .header("range", "bytes=-64")
        .header("if-range", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(tail.status(), 206);
    assert_eq!(
        tail.bytes().await.expect("body").as_ref(),
        &pdf[pdf.len() - 64..]
    );
    // If-Range naming another version: the whole (new) file.
    let stale = c
        .get(run.url(PDF))
        .header("range", "bytes=0-9")
        .header("if-range", "\"0000\"")
        .send()
        .await
        .expect("GET");
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.bytes().await.expect("body").len(), pdf.len());
    let beyond = c
        .get(run.url(PDF))
        .header("range", format!("bytes={}-", pdf.len() + 10))
        .send()
        .await
        .expect("GET");
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        header(&beyond, "content-range"),
        format!("bytes */{}", pdf.len())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_and_plain_bodies_are_the_same_bytes() {
    use std::io::Read as _;
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    for (url, file) in [
        ("/en/", "en/index.html"),
        ("/style.css", "style.css"),
        ("/sitemap.xml", "sitemap.xml"),
    ] {
        let plain = c.get(run.url(url)).send().await.expect("GET");
        assert_eq!(header(&plain, "content-encoding"), "");
        let plain_etag = header(&plain, "etag");
        let plain = plain.bytes().await.expect("body");
        let gz = c
            .get(run.url(url))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("GET");
        assert_eq!(header(&gz, "content-encoding"), "gzip", "{url}");
        assert!(
            header(&gz, "vary")
                .to_ascii_lowercase()
                .contains("accept-encoding")
        );
        // Another representation: the same validator, weak.
        assert_eq!(header(&gz, "etag"), format!("W/{plain_etag}"));
        let packed = gz.bytes().await.expect("body");
        assert!(packed.len() < plain.len(), "{url}");
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(packed.as_ref())
            .read_to_end(&mut unpacked)
            .expect("gunzip");
        assert_eq!(unpacked, plain.as_ref(), "{url}");
        assert_eq!(unpacked, p.public(file), "{url}");
        // The weak tag still revalidates.
        let again = c
            .get(run.url(url))
            .header("accept-encoding", "gzip")
            .header("if-none-match", format!("W/{plain_etag}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(again.status(), 304, "{url}");
    }
    // PDFs are compressed already: sent as they are.
    let pdf = c
        .get(run.url(PDF))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("GET");
    assert_eq!(header(&pdf, "content-encoding"), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_pages_are_never_cached() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    let token = secret().issue(herald_mail::Purpose::Unsubscribe, 1, None);
    for url in [
        "/subscribe".to_string(),
        format!("/unsubscribe?token={token}"),
        format!("/unsubscribe/{token}"),
        format!("/preferences?token={token}"),
        "/confirm?token=broken".to_string(),
    ] {
        let res = c
            .get(run.url(&url))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("GET");
        assert_eq!(header(&res, "cache-control"), "no-store", "{url}");
        assert_eq!(header(&res, "etag"), "", "{url}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_stay_on_the_same_origin() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    for path in ["/en", "//en", "///en", "/%2Fen"] {
        let res = c
            .get(format!("http://{}{path}", run.addr))
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status(), 308, "{path}");
        assert_eq!(header(&res, "location"), "/en/", "{path}");
    }
    // The ordinary form still works.
    let res = c.get(run.url("/en/")).send().await.expect("GET");
    assert_eq!(res.status(), 200);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn symbolic_links_never_lead_outside_public() {
    let p = Project::new("");
    let outside = p.root().join("secret.txt");
    std::fs::write(&outside, "not for readers").expect("write");
    let public = p.root().join("public");
    std::os::unix::fs::symlink(&outside, public.join("leak.txt")).expect("symlink");
    std::os::unix::fs::symlink(p.root().join("content"), public.join("src")).expect("symlink");
    std::os::unix::fs::symlink(public.join("style.css"), public.join("alias.css"))
        .expect("symlink");
    let run = start(&p).await;
    let c = client();
    for url in ["/leak.txt", "/src/herald.toml", "/src/"] {
        let res = c.get(run.url(url)).send().await.expect("GET");
        assert_eq!(res.status(), 404, "{url}");
        let body = res.text().await.expect("body");
        assert!(!body.contains("not for readers") && !body.contains("base_url"));
    }
    // A link that stays inside public/ is an ordinary file.
    let inside = c.get(run.url("/alias.css")).send().await.expect("GET");
    assert_eq!(inside.status(), 200);
    assert_eq!(
        inside.bytes().await.expect("body").as_ref(),
        p.public("style.css")
    );
    // A file served once and then replaced by a link outside is refused at once.
    let before = c.get(run.url("/en/")).send().await.expect("GET");
    assert_eq!(before.status(), 200);
    let page = public.join("en/index.html");
    std::fs::remove_file(&page).expect("rm");
    std::os::unix::fs::symlink(&outside, &page).expect("symlink");
    let after = c.get(run.url("/en/")).send().await.expect("GET");
    assert_eq!(after.status(), 404);
}

/// Opens a connection, runs `script` on it, and returns how long until the server
/// closed it (or `None` if it was still open after `give_up`).
fn closed_after(
    addr: std::net::SocketAddr,
    script: impl FnOnce(&mut TcpStream) + Send + 'static,
    give_up: Duration,
) -> std::thread::JoinHandle<Option<Duration>> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        let start = Instant::now();
        script(&mut s);
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = [0u8; 4096];
        while start.elapsed() < give_up {
            match s.read(&mut buf) {
                Ok(0) => return Some(start.elapsed()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return Some(start.elapsed()),
            }
        }
        None
    })
}

fn drip(s: &mut TcpStream, bytes: &[u8], every: Duration, for_at_most: Duration) {
    let start = Instant::now();
    for b in bytes {
        if start.elapsed() > for_at_most || s.write_all(&[*b]).is_err() {
            return;
        }
        std::thread::sleep(every);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_closed_within_the_configured_timeouts() {
    let p = Project::new("header_timeout_secs = 1\nbody_timeout_secs = 2\n");
    let run = start(&p).await;
    let addr = run.addr;
    // Far longer than the timeouts: a connection still open then was never closed.
    let give_up = Duration::from_secs(20);
    let idle = closed_after(addr, |_| {}, give_up);
    let header_drip = closed_after(
        addr,
        |s| {
            drip(
                s,
                b"GET /en/ HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                Duration::from_millis(300),
                Duration::from_secs(12),
            )
        },
        give_up,
    );
    let body_drip = closed_after(
        addr,
        |s| {
            s.write_all(
                b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n",
            )
            .expect("write");
            drip(
                s,
                &[b'a'; 200],
                Duration::from_millis(300),
                Duration::from_secs(12),
            );
        },
        give_up,
    );
    let no_body = closed_after(
        addr,
        |s| {
            s.write_all(b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
                .expect("write");
        },
        give_up,
    );
    let kept_alive = closed_after(
        addr,
        |s| {
            s.write_all(b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("write");
        },
        give_up,
    );
    for (name, h) in [
        ("idle", idle),
        ("header dripped", header_drip),
        ("body dripped", body_drip),
        ("announced body never sent", no_body),
        ("kept alive, then idle", kept_alive),
    ] {
        let closed = tokio::task::spawn_blocking(move || h.join().expect("thread"))
            .await
            .expect("join");
        assert!(
            closed.is_some(),
            "{name}: still open after {give_up:?} with 1 s/2 s timeouts"
        );
    }
    // The service still answers.
    let res = client().get(run.url("/en/")).send().await.expect("GET");
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_past_the_bound_wait_until_one_closes() {
    let p = Project::new("max_connections = 2\nheader_timeout_secs = 60\n");
    let run = start(&p).await;
    let addr = run.addr;
    let result = tokio::task::spawn_blocking(move || {
        let a = TcpStream::connect(addr).expect("connect");
        let b = TcpStream::connect(addr).expect("connect");
        // Both are accepted (and idle); the third waits in the backlog.
        std::thread::sleep(Duration::from_millis(300));
        let mut third = TcpStream::connect(addr).expect("connect");
        third
            .set_read_timeout(Some(Duration::from_millis(700)))
            .expect("timeout");
        write!(third, "GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let mut buf = [0u8; 16];
        let early = third.read(&mut buf);
        assert!(
            early.is_err(),
            "the third connection was answered while two were open: {early:?}"
        );
        drop(a);
        third
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let (head, _, _) = read_response(&mut third);
        drop(b);
        head
    })
    .await
    .expect("client");
    assert!(result.starts_with("HTTP/1.1 200"), "{result}");
}
