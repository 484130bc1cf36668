//! A real HTTP server on loopback that plugins' outbound requests reach: it
//! answers each request with the next scripted [`Reply`] (the last one
//! repeats) and records what it received.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status, these headers and this body.
    Status(u16, Vec<(&'static str, String)>, String),
    /// A 200 whose body is this many bytes.
    Huge(usize),
    /// Never answers (the connection stays open).
    Hang,
}

impl Reply {
    /// A bare status.
    pub fn status(status: u16) -> Self {
        Reply::Status(status, Vec::new(), String::new())
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method, e.g. `POST`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Received {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    received: Vec<Received>,
}

/// A running receiver; it stops when dropped (its runtime is shut down).
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Receiver {
    /// Starts a receiver on `127.0.0.1:<free port>` answering with `script`
    /// in order, the last reply repeating.
    pub fn start(script: Vec<Reply>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("start the receiver's runtime");
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            received: Vec::new(),
        }));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        let app = axum::Router::new().fallback({
            let state = state.clone();
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: HeaderMap,
                  body: Bytes| {
                let state = state.clone();
                async move { answer(&state, method, uri, headers, body).await }
            }
        });
        runtime.spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Self {
            addr,
            state,
            _runtime: runtime,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("receiver lock").received.clone()
    }
}

async fn answer(
    state: &Mutex<State>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut state = state.lock().expect("receiver lock");
        state.received.push(Received {
            method: method.to_string(),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        });
        if state.script.len() > 1 {
            state.script.pop_front()
        } else {
            state.script.front().cloned()
        }
    };
    match reply.unwrap_or(Reply::status(204)) {
        Reply::Status(status, headers, body) => {
            let mut response =
                Response::builder().status(StatusCode::from_u16(status).expect("a valid status"));
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(Body::from(body)).expect("a valid response")
        }
        Reply::Huge(bytes) => (StatusCode::OK, vec![b'x'; bytes]).into_response(),
        Reply::Hang => std::future::pending().await,
    }
}
