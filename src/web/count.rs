//! Middleware counting requests by status and body bytes in and out, for `/metrics`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::metrics::{Counter, Metrics};

/// Wraps both bodies in byte counters, counts the answer's status and logs the request at
/// debug level (`MUSEHUB_LOG=musehub::web=debug`).
pub async fn layer(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let req = req.map(|b| {
        Body::new(Counting {
            inner: b,
            metrics: metrics.clone(),
            dir: Dir::In,
        })
    });
    let res = next.run(req).await;
    metrics.request(res.status().as_u16());
    tracing::debug!(target: "musehub::web", %method, %path, status = res.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    res.map(|b| {
        Body::new(Counting {
            inner: b,
            metrics,
            dir: Dir::Out,
        })
    })
}

#[derive(Debug, Clone, Copy)]
enum Dir {
    In,
    Out,
}

struct Counting {
    inner: Body,
    metrics: Arc<Metrics>,
    dir: Dir,
}

impl Counting {
    fn counter(&self) -> &Counter {
        match self.dir {
            Dir::In => &self.metrics.bytes_in,
            Dir::Out => &self.metrics.bytes_out,
        }
    }
}

impl HttpBody for Counting {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.counter().add(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
