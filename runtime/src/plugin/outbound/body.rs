//! A response body that ends in an error once it has delivered more than its
//! cap, so a plugin reading a huge (or endless) response costs bounded time
//! and memory: the guest sees `http-response-body-size`.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::Error as HttpError;

pub(super) struct CappedBody {
    inner: hyper::body::Incoming,
    remaining: u64,
    max: u64,
    failed: bool,
}

impl CappedBody {
    pub(super) fn new(inner: hyper::body::Incoming, max: u64) -> Self {
        Self {
            inner,
            remaining: max,
            max,
            failed: false,
        }
    }
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(HttpError::from(e)))),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
            if len > self.remaining {
                self.failed = true;
                return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(self.max)))));
            }
            self.remaining -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
