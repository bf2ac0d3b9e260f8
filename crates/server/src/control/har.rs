//! A sandbox's request log as an HTTP Archive (HAR 1.2), so browsers'
//! developer tools, Postman, Insomnia or k6 can open what the sandbox saw.

use std::collections::HashMap;

use axum::{
    Extension, Json,
    extract::{Path, Query, State},
    http::header,
    response::IntoResponse,
};
use har::{
    Har, Spec,
    v1_2::{Content, Creator, Entries, Headers, Log, PostData, QueryString, Request, Response},
};
use sbx_store::LogRecord;
use serde_json::Value;

use crate::{
    app::{AppState, rfc3339},
    control::logs::query,
    http::error::ApiError,
    service::caller::Caller,
    service::logs::{self, Export},
};

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/logs.har", operation_id = "exportLogsHar", tag = "logs",
    params(("id" = String, Path),
           ("status" = Option<String>, Query, description = "a status (404) or a class (4xx)"), ("method" = Option<String>, Query), ("operation" = Option<String>, Query),
           ("since" = Option<String>, Query, description = "RFC 3339"),
           ("text" = Option<String>, Query, description = "in the path, query or bodies"),
           ("limit" = Option<u32>, Query, description = "only the newest this many (1 to 200); all by default")),
    responses((status = 200, content_type = "application/json", description = "HAR 1.2, oldest request first; keys and redacted values stay masked"),
              (status = 400, description = "a filter with a bad value, named"), (status = 404)),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let filter = query(&params)?;
    // All the log keeps, unless a limit asks for fewer.
    let wanted = if params.contains_key("limit") {
        filter.limit as usize
    } else {
        state.config.request_log_limits.keep_per_sandbox as usize
    };
    let Export {
        records,
        cut_at_budget,
    } = logs::export(&state, &caller, &id, filter, wanted).await?;
    let mut comment = format!("the request log of sandbox {id}");
    if cut_at_budget {
        comment.push_str(&format!(
            "; only the newest {} requests fit in one export (64 MiB): export older ones with `since` and `status`",
            records.len()
        ));
    }
    let root = format!("{}/sbx/{id}", state.public_url);
    let log = Log {
        creator: Creator {
            name: "SmartSandbox".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            comment: None,
        },
        entries: records.iter().rev().map(|r| entry(&root, r)).collect(),
        comment: Some(comment),
        ..Log::default()
    };
    let disposition = format!("attachment; filename=\"{id}.har\"");
    Ok((
        [(header::CONTENT_DISPOSITION, disposition)],
        Json(Har {
            log: Spec::V1_2(log),
        }),
    ))
}

fn entry(root: &str, record: &LogRecord) -> Entries {
    let request_headers = headers(&record.request_headers);
    let response_headers = headers(&record.response_headers);
    let url = match &record.query {
        Some(query) => format!("{root}{}?{query}", record.path),
        None => format!("{root}{}", record.path),
    };
    let query_string = record
        .query
        .as_deref()
        .map(|query| {
            form_urlencoded::parse(query.as_bytes())
                .map(|(name, value)| QueryString {
                    name: name.into_owned(),
                    value: value.into_owned(),
                    comment: None,
                })
                .collect()
        })
        .unwrap_or_default();
    let millis = record.latency_us as f64 / 1000.0;
    let mut comment = vec![format!("request id {}", record.request_id)];
    comment.extend(record.operation.iter().map(|op| format!("operation {op}")));
    comment.extend(record.scenario.iter().map(|s| format!("scenario {s}")));
    comment.extend(record.chaos.iter().map(|c| format!("chaos {c}")));
    if record.replayed {
        comment.push("idempotent replay".to_owned());
    }
    Entries {
        started_date_time: rfc3339(record.at_ms),
        time: millis,
        request: Request {
            method: record.method.clone(),
            url,
            http_version: "HTTP/1.1".to_owned(),
            query_string,
            post_data: (!record.request_body.is_empty()).then(|| PostData {
                mime_type: content_type(&request_headers),
                text: Some(record.request_body.clone()),
                ..PostData::default()
            }),
            headers_size: -1,
            body_size: body_size(&record.request_body),
            headers: request_headers,
            ..Request::default()
        },
        response: Response {
            status: record.status,
            status_text: u16::try_from(record.status)
                .ok()
                .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .unwrap_or_default()
                .to_owned(),
            http_version: "HTTP/1.1".to_owned(),
            content: Content {
                size: body_size(&record.response_body),
                mime_type: Some(content_type(&response_headers)),
                text: Some(record.response_body.clone()),
                ..Content::default()
            },
            redirect_url: Some(
                header_value(&response_headers, "location")
                    .unwrap_or_default()
                    .to_owned(),
            ),
            headers_size: -1,
            body_size: body_size(&record.response_body),
            headers: response_headers,
            ..Response::default()
        },
        timings: har::v1_2::Timings {
            send: 0.0,
            wait: millis,
            receive: 0.0,
            blocked: None,
            dns: None,
            connect: None,
            ssl: None,
            comment: None,
        },
        comment: Some(comment.join("; ")),
        ..Entries::default()
    }
}

/// Headers as logged (a JSON object of lower-case names).
fn headers(logged: &Value) -> Vec<Headers> {
    let Value::Object(map) = logged else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(name, value)| {
            Some(Headers {
                name: name.clone(),
                value: value.as_str()?.to_owned(),
                comment: None,
            })
        })
        .collect()
}

fn header_value<'a>(headers: &'a [Headers], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name == name)
        .map(|h| h.value.as_str())
}

fn content_type(headers: &[Headers]) -> String {
    header_value(headers, "content-type")
        .unwrap_or_default()
        .to_owned()
}

/// The body's size in bytes; -1 (unknown, as HAR has it) when the log cut it.
fn body_size(logged: &str) -> i64 {
    if crate::workers::request_log::is_cut(logged) {
        -1
    } else {
        i64::try_from(logged.len()).unwrap_or(-1)
    }
}
