//! Who is looking at a page: the browser session's cookie, resolved by the
//! same service the control plane uses, and the CSRF check of the portal's
//! forms (the session's token in a hidden field, and no foreign `Origin`).

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, Method, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use sbx_store::AccountRecord;

use crate::{
    app::AppState,
    http::access,
    service::{accounts, caller::Caller},
};

/// A signed-in developer (or admin) and what their pages need.
pub struct Visitor {
    pub caller: Caller,
    pub account: AccountRecord,
    /// The session's CSRF token, for the page's forms and scripts.
    pub csrf: String,
}

/// As a handler's argument: a page needs a signed-in visitor, and one
/// without a session is sent to sign in, coming back to the page after
/// (to the dashboard, from a form's post).
impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let here = match parts.method {
            Method::GET => parts.uri.path_and_query().map_or("/", |p| p.as_str()),
            _ => "/",
        };
        signed_in(state, &parts.headers, here).await
    }
}

/// The signed-in visitor, if the cookie names a live session of an enabled
/// account. The admin token is not a browser session: it signs no one in.
pub async fn visitor(state: &AppState, headers: &HeaderMap) -> Option<Visitor> {
    let token = access::session_from_cookie(state, headers)?;
    let caller = accounts::identify(state, token).await.ok().flatten()?;
    let id = caller.owner()?.clone();
    let account = state.store.get_account(&id).await.ok().flatten()?;
    Some(Visitor {
        caller,
        account,
        csrf: accounts::csrf_token(token),
    })
}

/// The signed-in visitor, or a redirect to the sign-in page that comes back
/// to `here` afterwards.
pub async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    here: &str,
) -> Result<Visitor, Response> {
    match visitor(state, headers).await {
        Some(visitor) => Ok(visitor),
        None => Err(to_sign_in(here)),
    }
}

pub fn to_sign_in(here: &str) -> Response {
    let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
    Redirect::to(&format!("/portal/signin?next={next}")).into_response()
}

/// Whether a form post comes from one of this server's pages: the hidden
/// field carries the session's CSRF token, and the browser's `Origin`, when
/// it sends one, is this server's (as configured, or as the browser
/// reached it).
pub fn form_is_ours(state: &AppState, headers: &HeaderMap, visitor: &Visitor, sent: &str) -> bool {
    same_origin(state, headers) && !sent.is_empty() && sent == visitor.csrf
}

/// No `Origin`, or this server's. Sign-in and sign-up forms, which no
/// session protects yet, are held to this.
pub fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if origin == state.public_url.as_ref() {
        return true;
    }
    let scheme = state
        .public_url
        .split_once("://")
        .map_or("http", |(s, _)| s);
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|host| origin == format!("{scheme}://{host}"))
}

/// Where to go after signing in: a path of this server only, never an
/// absolute or scheme-relative URL someone put in the link.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.contains(['\r', '\n']) =>
        {
            path
        }
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(
            safe_next(Some("/portal/sandboxes/sbx-1")),
            "/portal/sandboxes/sbx-1"
        );
        for hostile in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "",
            "x",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/", "{hostile}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
