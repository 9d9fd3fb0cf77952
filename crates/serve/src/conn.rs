//! The accept loop: how long a connection may take, how many there may be, and
//! how each accepted socket is set up.
//!
//! axum's `serve` sets no timeouts, so a client that never finishes its headers, or
//! announces a body it never sends, holds a connection (and its memory) forever.
//! Here hyper's HTTP/1 connection reads the headers under a deadline (the same
//! deadline covers a keep-alive connection waiting for its next request), a request
//! body must arrive whole before a second deadline ([`DeadlineBody`]: tower-http's
//! body timeout restarts at every frame, so a body dripped a byte at a time would
//! never end), and a semaphore bounds the connections open at once: past the bound,
//! new connections wait in the kernel's backlog instead of being accepted.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use bytes::Bytes;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// The connection limits, from `[serve]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    /// Time to receive a request's headers, and to wait for the next request on a
    /// kept-alive connection.
    pub header_timeout: Duration,
    /// Time to receive a request's whole body, from the end of its headers.
    pub body_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

/// Accept one connection and set it up. Without `TCP_NODELAY`, a response written in
/// two parts (headers, then a body) waits for the client's delayed ACK: 40 ms a file.
async fn accept(listener: &TcpListener) -> std::io::Result<(TcpStream, SocketAddr)> {
    let (stream, peer) = listener.accept().await?;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY on a connection from {peer}: {e}");
    }
    Ok((stream, peer))
}

/// Serve `router` on `listener` until `shutdown` completes, then let requests in
/// flight finish for up to `limits.shutdown_grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = accept(&listener) => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let svc = service(router.clone(), peer, limits.body_timeout);
        let conn = http.serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection from {peer}: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still running after {:?}: closing them",
            limits.shutdown_grace
        );
    }
    Ok(())
}

/// The router as a hyper service of one connection, which tells handlers the peer.
fn service(
    router: Router,
    peer: SocketAddr,
    body_timeout: Duration,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req: Request =
            req.map(|body| axum::body::Body::new(DeadlineBody::new(body, body_timeout)));
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    })
}

/// A request body that fails once its deadline passes, however it trickles in.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
struct BodyTimeout(Duration);

impl DeadlineBody {
    fn new(inner: Incoming, limit: Duration) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit)))));
        }
        Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map_err(|e| Box::new(e) as axum::BoxError)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_have_nodelay() -> std::io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let client = tokio::spawn(TcpStream::connect(addr));
        let (stream, _) = accept(&listener).await?;
        assert!(stream.nodelay()?);
        drop(client.await);
        Ok(())
    }
}
