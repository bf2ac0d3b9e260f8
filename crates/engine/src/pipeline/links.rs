//! Links in answers lead back into the sandbox. The provider's absolute
//! URLs (its servers' origins, from examples and records) and the
//! synthesizer's `https://example.com` ones are rewritten to the sandbox's
//! base URL, in bodies and in `Link`/`Location` headers: a client that
//! follows `url`, `next_page_url` or `Link: <…>; rel="next"` stays in the
//! sandbox (PyGithub refuses a host other than its base URL's).

use memchr::memmem;

use crate::Response;

/// The origin of the URLs synthesis makes up (`format: uri`, `*_url`).
pub const SYNTHESIZED_ORIGIN: &str = "https://example.com";

/// Headers that carry URLs.
const LINK_HEADERS: [&str; 3] = ["link", "location", "content-location"];

/// The origins a revision's answers point into the sandbox instead, with
/// their searchers built once.
#[derive(Debug)]
pub struct Origins {
    finders: Vec<memmem::Finder<'static>>,
}

impl Origins {
    /// `origins` (the spec's servers' origins) and the synthesized one.
    pub fn new(origins: Vec<String>) -> Self {
        let finders = origins
            .iter()
            .map(String::as_str)
            .chain([SYNTHESIZED_ORIGIN])
            .map(|origin| memmem::Finder::new(origin).into_owned())
            .collect();
        Self { finders }
    }
}

/// The URL a sandbox's paths are below (`http://127.0.0.1:8080/sbx/sbx-1`,
/// no trailing slash), kept as borrowed parts of the request (scheme, its
/// `Host`, the path prefix) and joined only where a link needs it: most
/// answers have none. Empty: links stay.
#[derive(Debug, Clone, Copy, Default)]
pub struct BaseUrl<'a> {
    /// The URL's pieces, in order.
    parts: [&'a str; 4],
}

impl<'a> BaseUrl<'a> {
    /// `{scheme}://{host}{prefix}`.
    pub fn new(scheme: &'a str, host: &'a str, prefix: &'a str) -> Self {
        Self {
            parts: [scheme, "://", host, prefix],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| p.is_empty())
    }

    /// The URL as one string, allocated once at its length.
    pub fn joined(&self) -> String {
        self.parts.concat()
    }

    fn len(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum()
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        for part in self.parts {
            out.extend_from_slice(part.as_bytes());
        }
    }
}

/// A whole URL (a job's or a test's).
impl<'a> From<&'a str> for BaseUrl<'a> {
    fn from(url: &'a str) -> Self {
        Self {
            parts: [url, "", "", ""],
        }
    }
}

/// Rewrites `origins` to `base_url` in `response` (text bodies only).
pub fn rewrite(response: &mut Response, origins: &Origins, base_url: BaseUrl<'_>) {
    if base_url.is_empty() {
        return;
    }
    let text = response
        .headers
        .iter()
        .find(|(name, _)| name == "content-type")
        .is_some_and(|(_, value)| is_text(value));
    if text && let Some(body) = rewritten(&response.body, origins, base_url) {
        response.body = body.into();
    }
    for (name, value) in &mut response.headers {
        if LINK_HEADERS.contains(&name.as_str())
            && let Some(new) = rewritten(value.as_bytes(), origins, base_url)
        {
            *value = String::from_utf8(new).unwrap_or_default();
        }
    }
}

fn is_text(content_type: &str) -> bool {
    let essence = crate::request::body::essence(content_type);
    crate::request::body::is_json(&essence)
        || essence.starts_with("text/")
        || essence.ends_with("xml")
        || essence.ends_with("+yaml")
}

/// `bytes` with every `origin` (followed by `/`, `?`, `#`, a quote, a
/// delimiter or the end) replaced by `base_url`; `None` when none occurs.
fn rewritten(bytes: &[u8], origins: &Origins, base_url: BaseUrl<'_>) -> Option<Vec<u8>> {
    // Every origin has a `//`: most answers have none and cost one pass.
    memchr::memchr_iter(b'/', bytes).find(|&at| bytes.get(at + 1) == Some(&b'/'))?;
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for finder in &origins.finders {
        for start in finder.find_iter(bytes) {
            let end = start + finder.needle().len();
            let bounded = matches!(
                bytes.get(end),
                None | Some(b'/' | b'?' | b'#' | b'"' | b'>' | b' ' | b'<' | b'\'')
            );
            if bounded {
                spans.push((start, end));
            }
        }
    }
    if spans.is_empty() {
        return None;
    }
    spans.sort_unstable();
    let mut out = Vec::with_capacity(bytes.len() + spans.len() * base_url.len());
    let mut at = 0;
    for (start, end) in spans {
        if start < at {
            continue;
        }
        out.extend_from_slice(&bytes[at..start]);
        base_url.write_to(&mut out);
        at = end;
    }
    out.extend_from_slice(&bytes[at..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins() -> Origins {
        Origins::new(vec!["https://api.github.com".into()])
    }

    #[test]
    fn provider_and_synthesized_urls_point_into_the_sandbox() {
        let mut response = Response {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                (
                    "link".into(),
                    "<https://api.github.com/repos/o/r/issues?page=2>; rel=\"next\"".into(),
                ),
            ],
            body: br#"{"url":"https://api.github.com/repos/o/r","home":"https://api.github.community/x","blog":"https://example.com","next":"https://example.com?p=2"}"#.to_vec().into(),
        };
        rewrite(
            &mut response,
            &origins(),
            BaseUrl::new("http", "127.0.0.1:9", "/sbx/sbx-1"),
        );
        assert_eq!(
            std::str::from_utf8(&response.body).unwrap(),
            r#"{"url":"http://127.0.0.1:9/sbx/sbx-1/repos/o/r","home":"https://api.github.community/x","blog":"http://127.0.0.1:9/sbx/sbx-1","next":"http://127.0.0.1:9/sbx/sbx-1?p=2"}"#
        );
        assert_eq!(
            response.headers[1].1,
            "<http://127.0.0.1:9/sbx/sbx-1/repos/o/r/issues?page=2>; rel=\"next\""
        );
    }

    #[test]
    fn binary_bodies_and_an_unknown_base_are_left_alone() {
        let body = bytes::Bytes::from_static(b"https://example.com/x");
        let mut image = Response {
            status: 200,
            headers: vec![("content-type".into(), "image/png".into())],
            body: body.clone(),
        };
        rewrite(&mut image, &origins(), "http://h".into());
        assert_eq!(image.body, body);
        let mut text = Response {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.clone(),
        };
        rewrite(&mut text, &origins(), BaseUrl::default());
        assert_eq!(text.body, body);
    }
}
