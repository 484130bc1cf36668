//! Sending one allowed request: resolve the name, keep only the addresses the
//! operator allowed, connect (TLS for `https`), send, and hand the response
//! back with its body capped. Modelled on wasmtime-wasi-http's
//! `default_send_request`, which cannot be used as is because it resolves
//! and connects by name: the address checked must be the address connected.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use super::OutboundObserver;
use super::allow::{self, AllowedOrigin, Origin, Scheme};
use super::body::CappedBody;

/// Everything one request needs, decided before it is sent.
pub(super) struct Plan {
    pub(super) plugin: Arc<str>,
    /// The message id of the call that sent it.
    pub(super) call: Arc<str>,
    pub(super) origin: Origin,
    /// `origin` as shown in logs and metrics.
    pub(super) label: String,
    /// The allow-list entry that let it through.
    pub(super) entry: AllowedOrigin,
    pub(super) deadline: Instant,
    pub(super) connect_timeout: Duration,
    pub(super) max_response_bytes: u64,
    pub(super) observer: Option<Arc<dyn OutboundObserver>>,
    /// Held until the connection closes: one of the delivery's open requests.
    pub(super) permit: OwnedSemaphorePermit,
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

pub(super) async fn send(
    plan: Plan,
    request: http::Request<WasiBody>,
) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
    let started = Instant::now();
    let result = exchange(&plan, request).await;
    let Plan {
        plugin,
        call,
        label,
        observer,
        permit,
        ..
    } = plan;
    match result {
        Ok((response, connection)) => {
            let status = response.status().as_u16();
            tracing::debug!(plugin = %plugin, message_id = %call, origin = %label, status, "outbound request answered");
            if let Some(observer) = &observer {
                observer.responded(&plugin, &label, status, started.elapsed());
            }
            let io: IoFuture = Box::new(async move {
                let result = connection.await;
                drop(permit);
                result
            });
            Ok((response, io))
        }
        Err(Failure::Refused(why)) => {
            tracing::warn!(
                plugin = %plugin,
                message_id = %call,
                origin = %label,
                "outbound request refused: {why}; to reach a private address, list that address itself in allowed_outbound_hosts under [plugin.{}]",
                super::toml_key(&plugin),
            );
            if let Some(observer) = &observer {
                observer.refused(&plugin, &label);
            }
            Err(HttpError::DestinationIpProhibited)
        }
        Err(Failure::Http(error)) => {
            tracing::debug!(plugin = %plugin, message_id = %call, origin = %label, "outbound request failed: {error}");
            if let Some(observer) = &observer {
                observer.failed(&plugin, &label, started.elapsed());
            }
            Err(error)
        }
    }
}

enum Failure {
    /// The name resolved only to addresses the operator did not allow.
    Refused(String),
    Http(HttpError),
}

impl From<HttpError> for Failure {
    fn from(error: HttpError) -> Self {
        Failure::Http(error)
    }
}

type Connection = std::pin::Pin<Box<dyn Future<Output = Result<(), HttpError>> + Send>>;

async fn exchange(
    plan: &Plan,
    mut request: http::Request<WasiBody>,
) -> Result<(http::Response<WasiBody>, Connection), Failure> {
    let connect_by = (Instant::now() + plan.connect_timeout).min(plan.deadline);
    let addresses = resolve(plan, connect_by).await?;
    let stream = connect(&addresses, connect_by).await?;
    let stream: Box<dyn Stream> = match plan.origin.scheme {
        Scheme::Http => Box::new(stream),
        Scheme::Https => Box::new(tls(&plan.origin.host, stream, connect_by).await?),
    };
    let (mut sender, connection) = tokio::time::timeout_at(
        connect_by,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)?
    .map_err(HttpError::from)?;
    // The request line names the path only; scheme and authority are for proxies.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = http::Uri::try_from(path).map_err(|_| HttpError::HttpRequestUriInvalid)?;

    let mut connection: Connection =
        Box::pin(async move { connection.await.map_err(HttpError::from) });
    let mut ended = false;
    let response = tokio::time::timeout_at(plan.deadline, async {
        let mut send = std::pin::pin!(sender.send_request(request));
        tokio::select! {
            response = &mut send => response.map_err(HttpError::from),
            // The connection ended (a server that closes after answering):
            // the response, if one came, is already with the request.
            result = &mut connection => {
                ended = true;
                match (send.await, result) {
                    (Ok(response), _) => Ok(response),
                    (Err(_), Err(closed)) => Err(closed),
                    (Err(e), Ok(())) => Err(HttpError::from(e)),
                }
            }
        }
    })
    .await
    .map_err(|_| HttpError::ConnectionReadTimeout)??;
    if ended {
        // Finished already: it must not be polled again.
        connection = Box::pin(std::future::ready(Ok(())));
    }
    let max = plan.max_response_bytes;
    // A body announced larger than the cap fails at once, as a response
    // error the guest can name (a body cut while streaming can only close
    // the guest's stream).
    let announced = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|length| length > max) {
        return Err(HttpError::HttpResponseBodySize(Some(max)).into());
    }
    let response = response.map(|incoming| CappedBody::new(incoming, max).boxed_unsync());
    Ok((response, connection))
}

/// The addresses of the origin the operator allowed: a name resolved by the
/// host, each address checked by [`allow::is_public`] unless the operator
/// wrote it.
async fn resolve(plan: &Plan, by: Instant) -> Result<Vec<SocketAddr>, Failure> {
    let port = plan.origin.port;
    let found: Vec<SocketAddr> = match plan.origin.ip() {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => tokio::time::timeout_at(
            by,
            tokio::net::lookup_host((plan.origin.host.as_str(), port)),
        )
        .await
        .map_err(|_| HttpError::DnsTimeout)?
        .map_err(|_| HttpError::DnsError {
            rcode: Some("no address found".into()),
            info_code: None,
        })?
        .collect(),
    };
    let allowed = |ip: IpAddr| allow::is_public(ip) || plan.entry.names_address(ip);
    let (ok, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
        found.into_iter().partition(|a| allowed(a.ip()));
    if ok.is_empty() {
        let refused: Vec<String> = refused.iter().map(|a| a.ip().to_string()).collect();
        return Err(Failure::Refused(format!(
            "{} resolves to {}, which is not a public address and is not written in the allow-list entry {}",
            plan.origin.host,
            if refused.is_empty() {
                "nothing".to_owned()
            } else {
                refused.join(", ")
            },
            plan.entry,
        )));
    }
    Ok(ok)
}

async fn connect(addresses: &[SocketAddr], by: Instant) -> Result<TcpStream, HttpError> {
    let mut last = None;
    for address in addresses {
        match tokio::time::timeout_at(by, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = Some(e),
            Err(_) => return Err(HttpError::ConnectionTimeout),
        }
    }
    Err(last.map_or(HttpError::ConnectionRefused, HttpError::Connect))
}

async fn tls(
    host: &str,
    stream: TcpStream,
    by: Instant,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, HttpError> {
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => rustls::pki_types::ServerName::from(ip),
        Err(_) => rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|_| {
            HttpError::DnsError {
                rcode: Some("invalid DNS name".into()),
                info_code: None,
            }
        })?,
    };
    let connector = tokio_rustls::TlsConnector::from(tls_config());
    tokio::time::timeout_at(by, connector.connect(name, stream))
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Tls)
}

/// The TLS client settings: the Mozilla root certificates (webpki-roots),
/// so a plugin trusts what a browser trusts and nothing the host adds.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
                .unwrap_or_else(|e| {
                    panic!("the ring provider supports the default TLS versions: {e}")
                });
            Arc::new(config)
        })
        .clone()
}
