//! A session's way out: an HTTP proxy on a Unix socket that only its jail
//! can reach (bound into it, owned by its uid). It tunnels `CONNECT
//! host:port` (HTTPS) and forwards plain `http://` requests, for hosts on
//! the session's allowlist only, and never to a loopback, private,
//! link-local or metadata address, whatever a name resolves to (the
//! operator's `egress_allow` ranges excepted).

use std::{convert::Infallible, net::SocketAddr, path::Path, sync::Arc};

use axum::body::Body;
use hyper::{Method, Request, Response, StatusCode, body::Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixListener};
use tokio_util::sync::CancellationToken;

use crate::data_plane::egress::EgressPolicy;

/// Most hosts an allowlist names.
pub const MAX_HOSTS: usize = 64;

/// Hosts a session may reach: `pypi.org` (that host), `*.example.com`
/// (its subdomains).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist(Vec<String>);

impl Allowlist {
    /// Checks and keeps `hosts` (lower-cased), saying which is wrong.
    pub fn new(hosts: &[String]) -> Result<Self, String> {
        if hosts.len() > MAX_HOSTS {
            return Err(format!("at most {MAX_HOSTS} hosts"));
        }
        let mut kept = Vec::new();
        for host in hosts {
            let host = host.trim().to_ascii_lowercase();
            let name = host.strip_prefix("*.").unwrap_or(&host);
            let valid = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !valid {
                return Err(format!(
                    "{host:?} is not a host name (such as pypi.org or *.pythonhosted.org)"
                ));
            }
            kept.push(host);
        }
        Ok(Self(kept))
    }

    pub fn hosts(&self) -> &[String] {
        &self.0
    }

    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.0.iter().any(|entry| match entry.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            None => *entry == host,
        })
    }
}

/// Serves the proxy on `socket` until `stop`.
pub fn serve(
    socket: &Path,
    allowlist: Allowlist,
    policy: Arc<EgressPolicy>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let listener = UnixListener::bind(socket)?;
    let allowlist = Arc::new(allowlist);
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                () = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let (allowlist, policy) = (allowlist.clone(), policy.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    proxy(request, allowlist.clone(), policy.clone())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Ok(())
}

fn refused(status: StatusCode, why: String) -> Response<Body> {
    tracing::info!(%why, "session egress refused");
    let mut response = Response::new(Body::from(format!("sbx: {why}\n")));
    *response.status_mut() = status;
    response
}

/// Resolves `host` and connects to the first address the policy permits.
async fn connect(host: &str, port: u16, policy: &EgressPolicy) -> Result<TcpStream, String> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .collect();
    let Some(address) = addresses.iter().find(|a| policy.permits(a.ip())) else {
        let first = addresses.first().map_or_else(
            || format!("{host} has no address"),
            |a| policy.refusal(a.ip()),
        );
        return Err(first);
    };
    TcpStream::connect(address)
        .await
        .map_err(|e| format!("{host}:{port} did not answer: {e}"))
}

async fn proxy(
    request: Request<Incoming>,
    allowlist: Arc<Allowlist>,
    policy: Arc<EgressPolicy>,
) -> Result<Response<Body>, Infallible> {
    let uri = request.uri().clone();
    let (Some(host), secure) = (
        uri.host().map(str::to_owned),
        request.method() == Method::CONNECT,
    ) else {
        return Ok(refused(
            StatusCode::BAD_REQUEST,
            "send requests through the proxy as CONNECT host:port or an absolute http:// URL"
                .into(),
        ));
    };
    if !allowlist.allows(&host) {
        return Ok(refused(
            StatusCode::FORBIDDEN,
            format!("{host} is not on this session's network allowlist"),
        ));
    }
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let upstream = match connect(&host, port, &policy).await {
        Ok(upstream) => upstream,
        Err(why) => return Ok(refused(StatusCode::FORBIDDEN, why)),
    };
    if secure {
        tokio::spawn(async move {
            if let Ok(upgraded) = hyper::upgrade::on(request).await {
                let mut client = TokioIo::new(upgraded);
                let mut upstream = upstream;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
        return Ok(Response::new(Body::empty()));
    }
    Ok(forward(request, upstream)
        .await
        .unwrap_or_else(|why| refused(StatusCode::BAD_GATEWAY, why)))
}

/// Sends a plain-HTTP request on to its host, in origin form.
async fn forward(
    request: Request<Incoming>,
    upstream: TcpStream,
) -> Result<Response<Body>, String> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(upstream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = path
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| e.to_string())?;
    let answer = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = answer.into_parts();
    Ok(Response::from_parts(parts, Body::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowlist_names_hosts_and_their_subdomains_only() {
        let list = Allowlist::new(&["PyPI.org".into(), "*.pythonhosted.org".into()]).unwrap();
        assert!(list.allows("pypi.org") && list.allows("pypi.org."));
        assert!(list.allows("files.pythonhosted.org"));
        assert!(!list.allows("pythonhosted.org"));
        assert!(!list.allows("evilpypi.org") && !list.allows("pypi.org.evil.com"));
        assert!(!list.allows("xpythonhosted.org"));
        for bad in ["", "*.", "a b", "http://x", "x/y"] {
            assert!(Allowlist::new(&[bad.into()]).is_err(), "{bad:?}");
        }
    }
}
