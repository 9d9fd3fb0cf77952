//! The static half of the load bench: a statement page, the stylesheet and a PDF,
//! at 4 and 50 connections, from herald serve and, when it is installed, from nginx
//! serving the same `public/` on the same machine (keep-alive, `sendfile`, as many
//! workers as cores), so the machine's own ceiling is printed beside herald's.

use std::path::Path;
use std::process::{Child, Command};

/// wrk's own summary: requests per second, p50 and p99 in milliseconds.
struct Figures {
    rps: f64,
    p50: f64,
    p99: f64,
    non_2xx: u64,
}

fn millis(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

fn wrk(url: &str, connections: u32, secs: u64) -> Figures {
    let out = Command::new("wrk")
        .args(["-t", "2", "-c", &connections.to_string(), "-d"])
        .arg(format!("{secs}s"))
        .arg("--latency")
        .arg(url)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| -> Option<&str> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
    };
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Figures {
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN),
        p50: field("50%").map_or(f64::NAN, millis),
        p99: field("99%").map_or(f64::NAN, millis),
        non_2xx,
    }
}

/// nginx on `public/`, on a free port, with a configuration of its own in `dir`.
fn nginx(public: &Path, dir: &Path) -> Option<(Child, u16)> {
    let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let conf = format!(
        "daemon off;\nworker_processes auto;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
events {{ worker_connections 1024; }}\n\
http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n\
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fcgi;\n\
  uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;\n\
  types {{ text/html html; text/css css; application/pdf pdf; }}\n\
  server {{ listen 127.0.0.1:{port}; root {public}; }}\n}}\n",
        dir = dir.display(),
        public = public.display(),
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).ok()?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir)
        .spawn()
        .ok()?;
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((child, port));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}

fn line(what: &str, f: &Figures) -> String {
    format!(
        "{what:<14} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms{}",
        f.rps,
        f.p50,
        f.p99,
        if f.non_2xx > 0 {
            format!("  ({} not 2xx)", f.non_2xx)
        } else {
            String::new()
        }
    )
}

/// Print herald serve (at `herald`, e.g. `http://127.0.0.1:1234`) beside nginx.
pub fn run(public: &Path, herald: &str, secs: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let nginx = nginx(public, dir.path());
    if nginx.is_none() {
        println!(
            "static files: nginx is not installed (apt-get install nginx): herald serve alone"
        );
    }
    let nginx_base = nginx
        .as_ref()
        .map(|(_, port)| format!("http://127.0.0.1:{port}"));
    for (name, path) in [
        (
            "statement page",
            "/en/2014/world-day-against-trafficking/index.html",
        ),
        ("style.css", "/style.css"),
        (
            "PDF",
            "/en/2014/world-day-against-trafficking/world-day-against-trafficking.en.pdf",
        ),
    ] {
        for connections in [4, 50] {
            println!("{name}, {connections} connections:");
            let h = wrk(&format!("{herald}{path}"), connections, secs);
            println!("  {}", line("herald serve", &h));
            if let Some(base) = &nginx_base {
                let n = wrk(&format!("{base}{path}"), connections, secs);
                println!("  {}", line("nginx", &n));
                println!("  herald serve / nginx: {:.2}", h.rps / n.rps);
            }
        }
    }
    if let Some((mut child, _)) = nginx {
        let _ = child.kill();
        let _ = child.wait();
    }
}
