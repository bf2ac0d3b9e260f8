//! The one way out: forwarding and webhooks send through here. Loopback,
//! private, link-local and other non-public addresses are refused unless
//! the operator allows them — checked on the addresses a name resolves to,
//! so DNS cannot smuggle a private target past the check. Allowing private
//! ranges never opens link-local and cloud-metadata addresses: those only
//! an explicit `egress_allow` entry reaches.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Arc, OnceLock},
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sbx_engine::{Upstream, UpstreamError, UpstreamRequest, UpstreamResponse};

/// Largest upstream body passed on, in bytes.
pub const MAX_UPSTREAM_BODY: usize = 8 * 1024 * 1024;

/// Whether `ip` is reachable by anyone on the internet. An IPv6 address
/// that carries an IPv4 one (mapped, compatible, NAT64, 6to4) is judged
/// by the IPv4 address it leads to.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

/// The IPv4 address an IPv6 one routes to, when it embeds one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return Some(mapped);
    }
    // IPv4-compatible (::a.b.c.d, deprecated); `::` and `::1` are not.
    if s[..6].iter().all(|&x| x == 0) && !(s[6] == 0 && s[7] <= 1) {
        return Some(low);
    }
    // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052).
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0) {
        return Some(low);
    }
    // 6to4 2002:AABB:CCDD::/48 (RFC 3056).
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2])));
    }
    None
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let first = s[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link local
        || (first & 0xffc0) == 0xfec0 // site local (deprecated)
        || (first == 0x64 && s[1] == 0xff9b) // local-use NAT64 (64:ff9b:1::/48)
        || (first == 0x100 && s[1..4].iter().all(|&x| x == 0)) // discard-only
        || (first == 0x2001 && s[1] == 0) // Teredo: tunnels to an address it hides
        || (first == 0x2001 && s[1] == 0x0002 && s[2] == 0) // benchmarking
        || (first == 0x2001 && (s[1] & 0xfff0) == 0x0010) // ORCHID
        || first == 0x2001 && s[1] == 0x0db8) // documentation
}

/// Link-local addresses (where cloud metadata services answer) and the
/// metadata addresses outside that range: never opened by allowing
/// private ranges.
fn is_link_local_or_metadata(ip: IpAddr) -> bool {
    let v4 = match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => embedded_v4(v6),
    };
    match (ip, v4) {
        (_, Some(v4)) => v4.is_link_local() || v4 == Ipv4Addr::new(100, 100, 100, 200),
        (IpAddr::V6(v6), None) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)
        }
        (IpAddr::V4(_), None) => false,
    }
}

/// Which addresses outbound calls (forwards, webhook deliveries) may reach.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    /// Loopback and private ranges too (`--allow-private-egress`), for
    /// local receivers; link-local and metadata addresses stay refused.
    pub allow_private: bool,
    /// Ranges reached whatever they are (`egress_allow`).
    pub allow: Vec<ipnet::IpNet>,
}

impl EgressPolicy {
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&ip))
            || is_public(ip)
            || (self.allow_private && !is_link_local_or_metadata(ip))
    }

    /// Why `ip` is refused, and what would allow it.
    pub fn refusal(&self, ip: IpAddr) -> String {
        if is_link_local_or_metadata(ip) {
            format!(
                "{ip} is a link-local or cloud-metadata address, which the egress policy refuses even with --allow-private-egress (list it in egress_allow to reach it)"
            )
        } else {
            format!(
                "{ip} is a private or loopback address, which the egress policy refuses (allow them with --allow-private-egress)"
            )
        }
    }
}

/// Resolves names, keeping only addresses the policy allows.
struct PolicyResolver(Arc<EgressPolicy>);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let allowed: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map(|found| found.filter(|a| policy.permits(a.ip())).collect())
                .unwrap_or_default();
            if allowed.is_empty() {
                // One message whether the name does not exist or leads
                // inside: the answer must not tell which internal names exist.
                return Err(format!(
                    "{host} has no address the egress policy allows; it refuses names that do not resolve or resolve to private, loopback, link-local or metadata addresses (allow private ones with --allow-private-egress, others with egress_allow)"
                )
                .into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Sends upstream requests with reqwest, under the egress policy.
pub struct HttpUpstream {
    /// Built on the first request out: its TLS set-up (roots, providers)
    /// is code and memory a sandbox that never forwards or delivers does
    /// not need.
    client: OnceLock<reqwest::Client>,
    runtime: tokio::runtime::Handle,
    policy: Arc<EgressPolicy>,
}

impl HttpUpstream {
    pub fn shared(policy: EgressPolicy) -> Arc<Self> {
        Arc::new(Self {
            client: OnceLock::new(),
            runtime: tokio::runtime::Handle::current(),
            policy: Arc::new(policy),
        })
    }

    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    fn client(&self) -> Result<&reqwest::Client, UpstreamError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("smartsandbox/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(PolicyResolver(self.policy.clone())))
            .build()
            .map_err(|e| describe(&e))?;
        Ok(self.client.get_or_init(|| client))
    }

    /// Sends `request` under the policy, from async code.
    pub async fn send_async(
        &self,
        request: UpstreamRequest,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let url = reqwest::Url::parse(&request.url)
            .map_err(|e| UpstreamError::Refused(format!("invalid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UpstreamError::Refused(format!(
                "scheme {} is not allowed; use http or https",
                url.scheme()
            )));
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal.filter(|ip| !self.policy.permits(*ip)) {
            return Err(UpstreamError::Refused(self.policy.refusal(ip)));
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|e| UpstreamError::Refused(e.to_string()))?;
        let mut builder = self.client()?.request(method, url).timeout(request.timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if !request.body.is_empty() {
            builder = builder.body(request.body);
        }
        let mut response = builder.send().await.map_err(|e| describe(&e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
            if body.len() + chunk.len() > MAX_UPSTREAM_BODY {
                return Err(UpstreamError::Failed(format!(
                    "the upstream body exceeds {MAX_UPSTREAM_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(UpstreamResponse {
            status,
            headers,
            body,
        })
    }
}

/// The error and its causes on one line (reqwest hides the root cause).
fn describe(error: &reqwest::Error) -> UpstreamError {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    UpstreamError::Failed(text)
}

impl Upstream for HttpUpstream {
    fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> {
        self.runtime.block_on(self.send_async(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowing_private_ranges_keeps_link_local_and_metadata_refused() {
        let private = EgressPolicy {
            allow_private: true,
            allow: Vec::new(),
        };
        for ip in ["127.0.0.1", "10.0.0.5", "192.168.1.1", "::1", "fc00::1"] {
            assert!(private.permits(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "169.254.169.254",
            "169.254.170.2",
            "fe80::1",
            "fd00:ec2::254",
            "100.100.100.200",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!private.permits(ip), "{ip}");
            assert!(private.refusal(ip).contains("egress_allow"), "{ip}");
        }
        let listed = EgressPolicy {
            allow_private: false,
            allow: vec!["169.254.170.2/32".parse().unwrap()],
        };
        assert!(listed.permits("169.254.170.2".parse().unwrap()));
        assert!(!listed.permits("169.254.169.254".parse().unwrap()));
        assert!(!listed.permits("10.0.0.5".parse().unwrap()));
        assert!(listed.permits("93.184.216.34".parse().unwrap()));
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "255.255.255.255",
            // IPv4 inside IPv6: NAT64, 6to4, IPv4-compatible.
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "2002:a9fe:a9fe::1",
            "2002:7f00:1::",
            "::a9fe:a9fe",
            "::10.0.0.1",
            "64:ff9b:1::1",
            "fec0::1",
            "2001::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
