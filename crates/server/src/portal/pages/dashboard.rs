//! The dashboard at `/`: the developer's sandboxes (everyone's, for an
//! admin), creating and deleting them.

use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};

use super::{Confirmed, SandboxSummary, account::Done, duration_words};
use crate::{
    app::{AppState, rfc3339},
    portal::{
        Base, Failure, audited, changed, forged, notice_of,
        session::{self, Visitor},
        templates::page,
    },
    service::{
        projects,
        sandboxes::{self, NewSandbox},
    },
};

#[derive(Serialize)]
struct ProjectRow {
    name: String,
    revision: u32,
    updated_at: String,
}

/// What the create form was sent with, shown again beside its errors.
#[derive(Serialize, Deserialize, Default)]
pub struct CreateForm {
    #[serde(default)]
    project: String,
    #[serde(default)]
    revision: String,
    #[serde(default)]
    ttl: String,
    #[serde(default)]
    seed: String,
    #[serde(default)]
    label: String,
}

#[derive(Serialize)]
struct DashboardPage {
    #[serde(flatten)]
    base: Base,
    sandboxes: Vec<SandboxSummary>,
    projects: Vec<ProjectRow>,
    form: CreateForm,
    default_ttl: String,
}

/// The service's pointers, by the form's fields.
const FIELDS: [(&str, &str); 5] = [
    ("/project", "project"),
    ("/revision", "revision"),
    ("/ttl_seconds", "ttl"),
    ("/seed", "seed"),
    ("/label", "label"),
];

pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<Done>,
) -> Response {
    let mut base = Base::of(&visitor, "sandboxes");
    if let Some(notice) = notice_of(query.done.as_deref()) {
        base = base.notice(notice);
    }
    dashboard(
        &state,
        &visitor,
        StatusCode::OK,
        base,
        CreateForm::default(),
    )
    .await
}

async fn dashboard(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    base: Base,
    form: CreateForm,
) -> Response {
    let mut sandboxes: Vec<_> = sandboxes::list(state, &visitor.caller, None)
        .iter()
        .map(|sandbox| SandboxSummary::of(state, sandbox))
        .collect();
    sandboxes.sort_by(|a, b| a.id.cmp(&b.id));
    let projects = match projects::published(state).await {
        Ok(projects) => projects
            .into_iter()
            .map(|p| ProjectRow {
                name: p.name.to_string(),
                revision: p.latest_revision,
                updated_at: rfc3339(p.updated_at_ms),
            })
            .collect(),
        Err(error) => {
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "dashboard.html",
                DashboardPage {
                    base: Base::of(visitor, "sandboxes").failed(&Failure::from(error), &[]),
                    sandboxes,
                    projects: Vec::new(),
                    form,
                    default_ttl: String::new(),
                },
            );
        }
    };
    let default_ttl = if visitor.caller.is_admin() {
        "never expires".to_owned()
    } else {
        duration_words(state.config.quotas.default_ttl_seconds)
    };
    page(
        status,
        "dashboard.html",
        DashboardPage {
            base,
            sandboxes,
            projects,
            form,
            default_ttl,
        },
    )
}

/// `3600`, `30m`, `12h`, `7d` in seconds.
pub fn ttl_seconds(text: &str) -> Result<Option<u64>, Failure> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let size = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => 0,
    };
    digits
        .parse::<u64>()
        .ok()
        .filter(|_| size > 0)
        .and_then(|n| n.checked_mul(size))
        .map(Some)
        .ok_or_else(|| {
            Failure::field(
                "/ttl_seconds",
                format!("{text:?} is not a time to live: write seconds, or a number with m, h or d (30m, 12h, 7d)"),
            )
        })
}

fn revision(text: &str) -> Result<Option<u32>, Failure> {
    match text.trim() {
        "" | "latest" => Ok(None),
        text => text.parse::<u32>().map(Some).map_err(|_| {
            Failure::field(
                "/revision",
                format!("{text:?} is not a revision number; leave it empty to follow the latest"),
            )
        }),
    }
}

#[derive(Deserialize)]
pub struct Create {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: CreateForm,
}

pub async fn create(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Form(Create { csrf, form }): Form<Create>,
) -> Response {
    if !session::form_is_ours(&state, &headers, &visitor, &csrf) {
        return forged();
    }
    let new = ttl_seconds(&form.ttl).and_then(|ttl| {
        Ok(NewSandbox {
            revision: revision(&form.revision)?,
            ttl_seconds: ttl,
            seed: Some(form.seed.trim().to_owned()).filter(|s| !s.is_empty()),
            label: Some(form.label.trim().to_owned()).filter(|s| !s.is_empty()),
            ..NewSandbox::of(form.project.trim())
        })
    });
    let made = match new {
        Ok(new) => sandboxes::create(&state, &visitor.caller, new)
            .await
            .map_err(Failure::from),
        Err(failure) => Err(failure),
    };
    match made {
        Ok(made) => {
            let id = made.sandbox.id.to_string();
            audited(
                &state,
                &visitor.caller,
                &headers,
                "POST /api/v1/sandboxes",
                format!("/api/v1/sandboxes/{id}"),
                201,
            )
            .await;
            // The new sandbox's page, with its key shown once.
            super::sandbox::sandbox_page(
                &state,
                &visitor,
                &made.sandbox,
                StatusCode::CREATED,
                Base::of(&visitor, "sandboxes").notice("The sandbox is ready."),
                super::sandbox::Revealed::key("secret", made.api_key),
            )
            .await
        }
        Err(failure) => {
            let base = Base::of(&visitor, "sandboxes").failed(&failure, &FIELDS);
            dashboard(&state, &visitor, failure.status, base, form).await
        }
    }
}

pub async fn delete(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Confirmed>,
) -> Response {
    if !session::form_is_ours(&state, &headers, &visitor, &form.csrf) {
        return forged();
    }
    match sandboxes::delete(&state, &visitor.caller, &id).await {
        Ok(()) => {
            changed(
                &state,
                &visitor,
                &headers,
                (
                    "DELETE /api/v1/sandboxes/{id}",
                    format!("/api/v1/sandboxes/{id}"),
                    204,
                ),
                "/",
                "deleted",
            )
            .await
        }
        Err(error) => {
            let failure = Failure::from(error);
            let base = Base::of(&visitor, "sandboxes").failed(&failure, &[]);
            dashboard(
                &state,
                &visitor,
                failure.status,
                base,
                CreateForm::default(),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ttl_seconds;

    #[test]
    fn times_to_live_read_with_their_units() {
        assert_eq!(ttl_seconds("").ok().flatten(), None);
        assert_eq!(ttl_seconds("90").ok().flatten(), Some(90));
        assert_eq!(ttl_seconds("30m").ok().flatten(), Some(1_800));
        assert_eq!(ttl_seconds(" 12h ").ok().flatten(), Some(43_200));
        assert_eq!(ttl_seconds("7d").ok().flatten(), Some(604_800));
        for bad in ["7w", "h", "-1", "1.5h", "99999999999999999999d"] {
            assert!(ttl_seconds(bad).is_err(), "{bad}");
        }
    }
}
