//! The pages error bodies link to (`doc_url`, a problem's `type`): one per
//! kind of failure below every sandbox's root, at
//! [`sbx_engine::DOCS_PATH`]. Public like the sandbox's API, so a client
//! that follows the link never leaves the sandbox nor needs a token.

use sbx_engine::{DOCS_PATH, FailureKind, ProblemType, Response};
use serde_json::json;

/// The path below `DOCS_PATH` (`""`, `/not_found`) when `path` is one.
pub fn docs_path(path: &str) -> Option<&str> {
    let below = path.strip_prefix(DOCS_PATH)?;
    (below.is_empty() || below.starts_with('/')).then_some(below)
}

/// The answer for `below` (from [`docs_path`]): the index, or one kind's
/// page; JSON when the client prefers it to HTML.
pub fn answer(method: &str, below: &str, accept: Option<&str>) -> Response {
    if method != "GET" && method != "HEAD" {
        let mut refused = ProblemType::MethodNotAllowed
            .response(&format!("{DOCS_PATH} pages answer GET and HEAD only"));
        refused
            .headers
            .push(("allow".to_owned(), "GET, HEAD".to_owned()));
        return refused;
    }
    let wants_json = accept.is_some_and(prefers_json);
    let name = below.trim_matches('/');
    if name.is_empty() {
        return if wants_json {
            json_answer(&json!({
                "items": FailureKind::ALL.iter().map(|k| described(*k)).collect::<Vec<_>>()
            }))
        } else {
            // Links relative to the index's own URL, with or without its `/`.
            let prefix = if below.is_empty() { "errors/" } else { "" };
            html_answer("Errors", &index_html(prefix))
        };
    }
    let Some(kind) = FailureKind::named(name) else {
        let known: Vec<&str> = FailureKind::ALL.iter().map(|k| k.name()).collect();
        return ProblemType::NotFound.response(&format!(
            "no failure kind {name:?}; known: {}",
            known.join(", ")
        ));
    };
    if wants_json {
        json_answer(&described(kind))
    } else {
        html_answer(kind.title(), &kind_html(kind))
    }
}

/// Whether `accept` ranks JSON above HTML (absent types rank zero).
fn prefers_json(accept: &str) -> bool {
    let quality = |wanted: &str| {
        accept
            .split(',')
            .filter_map(|range| {
                let mut pieces = range.split(';');
                let media = pieces.next()?.trim();
                let q = pieces
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (media.eq_ignore_ascii_case(wanted)).then_some(q)
            })
            .fold(0.0f32, f32::max)
    };
    quality("application/json") > quality("text/html")
}

fn described(kind: FailureKind) -> serde_json::Value {
    json!({
        "name": kind.name(),
        "title": kind.title(),
        "statuses": kind.statuses(),
        "explanation": kind.explanation(),
    })
}

fn json_answer(value: &serde_json::Value) -> Response {
    Response {
        status: 200,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: serde_json::to_vec(value).unwrap_or_default().into(),
    }
}

fn html_answer(title: &str, main: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title} · sandbox errors</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem}}\
         code{{background:#f2f2f2;padding:0 .2em}}</style></head>\
         <body><main>{main}</main></body></html>\n"
    );
    Response {
        status: 200,
        headers: vec![(
            "content-type".to_owned(),
            "text/html; charset=utf-8".to_owned(),
        )],
        body: page.into_bytes().into(),
    }
}

fn statuses_text(kind: FailureKind) -> String {
    kind.statuses()
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn kind_html(kind: FailureKind) -> String {
    format!(
        "<h1>{title}</h1><p>Kind <code>{name}</code> · usually answered {statuses}</p>\
         <p>{explanation}</p>\
         <p>The error body takes the shape the operation declares for the status, with its \
         members saying this failure. A project pins exact values for it with \
         <code>errors: {{ {name}: {{ … }} }}</code> in <code>project.yaml</code>.</p>\
         <p><a href=\"./\">All sandbox errors</a></p>",
        title = kind.title(),
        name = kind.name(),
        statuses = statuses_text(kind),
        explanation = kind.explanation(),
    )
}

fn index_html(prefix: &str) -> String {
    let rows: String = FailureKind::ALL
        .iter()
        .map(|kind| {
            format!(
                "<li><a href=\"{prefix}{name}\"><code>{name}</code></a> ({statuses}): {title}</li>",
                name = kind.name(),
                statuses = statuses_text(*kind),
                title = kind.title(),
            )
        })
        .collect();
    format!("<h1>Sandbox errors</h1><ul>{rows}</ul>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_docs_prefix_is_taken() {
        assert_eq!(docs_path("/__sbx/errors"), Some(""));
        assert_eq!(docs_path("/__sbx/errors/not_found"), Some("/not_found"));
        assert_eq!(docs_path("/__sbx/errorsome"), None);
        assert_eq!(docs_path("/v1/__sbx/errors"), None);
    }

    #[test]
    fn json_only_when_ranked_above_html() {
        assert!(prefers_json("application/json"));
        assert!(prefers_json("text/html;q=0.5, application/json"));
        assert!(!prefers_json(
            "text/html,application/xhtml+xml,application/json;q=0.9"
        ));
        assert!(!prefers_json("*/*"));
    }
}
