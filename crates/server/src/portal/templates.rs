//! The portal's pages: minijinja templates compiled into the binary (no
//! files to ship or find at run time), HTML-escaped by default.

use std::sync::OnceLock;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use minijinja::Environment;
use serde::Serialize;

/// Every template, by name.
const TEMPLATES: [(&str, &str); 21] = [
    ("layout.html", include_str!("templates/layout.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("signin.html", include_str!("templates/signin.html")),
    ("signup.html", include_str!("templates/signup.html")),
    ("account.html", include_str!("templates/account.html")),
    ("dashboard.html", include_str!("templates/dashboard.html")),
    ("sandbox.html", include_str!("templates/sandbox.html")),
    ("explorer.html", include_str!("templates/explorer.html")),
    ("message.html", include_str!("templates/message.html")),
    ("webhooks.html", include_str!("templates/webhooks.html")),
    ("logs.html", include_str!("templates/logs.html")),
    ("request.html", include_str!("templates/request.html")),
    ("activity.html", include_str!("templates/activity.html")),
    ("timeline.html", include_str!("templates/timeline.html")),
    ("editor.html", include_str!("templates/editor.html")),
    ("diff.html", include_str!("templates/diff.html")),
    ("projects.html", include_str!("templates/projects.html")),
    ("project.html", include_str!("templates/project.html")),
    ("spec_field.html", include_str!("templates/spec_field.html")),
    ("sessions.html", include_str!("templates/sessions.html")),
    ("session.html", include_str!("templates/session.html")),
];

/// Pages may not be framed, run scripts or load anything but this server's
/// own files, nor post forms elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            // The templates are ours and tested: one that does not parse
            // fails `every_template_parses` before it can ship.
            if let Err(error) = env.add_template(name, source) {
                tracing::error!(%error, name, "a portal template does not parse");
            }
        }
        env.add_global("assets", super::assets::VERSION);
        env
    })
}

/// A page rendered with `context`, answered with `status`.
pub fn page(status: StatusCode, name: &str, context: impl Serialize) -> Response {
    let rendered = environment().get_template(name).and_then(|template| {
        template.render(minijinja::Value::from(minijinja::value::Serde(context)))
    });
    let mut response = match rendered {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), name, "rendering a portal page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>The page failed to render; the error has been logged.</p>"),
            )
                .into_response()
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }
}
