//! A sandbox's events: emitted by the developer, queued for every
//! endpoint that listens to their type.

use sbx_store::Origin;
use serde_json::Value;

use super::{ServiceError, ServiceResult, caller::Caller, sandboxes::live};
use crate::app::AppState;

/// An event just emitted.
pub struct Emitted {
    pub id: sbx_store::EventId,
    pub event_type: String,
    pub data: Value,
    /// Sandbox time.
    pub created_at_ms: i64,
}

/// Emits an event of `event_type`: `data`, checked against the type's
/// schema when the catalog declares it, or the type's golden payload.
pub async fn trigger(
    state: &AppState,
    caller: &Caller,
    id: &str,
    event_type: String,
    data: Option<Value>,
    request_id: &str,
) -> ServiceResult<Emitted> {
    let sandbox = live(state, caller, id)?;
    if event_type.is_empty() || event_type.len() > 200 {
        return Err(ServiceError::invalid(
            "/type",
            "type must be 1 to 200 characters",
        ));
    }
    let compiled = sandbox.serving().compiled;
    let declared = compiled.events.types.get(&event_type);
    let data = match (data, declared) {
        (Some(data), Some(declared)) => {
            declared
                .check(&data)
                .map_err(|m| ServiceError::invalid("/data", m))?;
            data
        }
        (Some(data), None) => data,
        (None, Some(_)) => {
            // A template renders it: not on an async worker.
            let context = sandbox.background();
            let now_ms = sandbox.now_ms();
            let (revision, name) = (compiled.clone(), event_type.clone());
            state
                .user_work
                .run(id, move || match revision.events.types.get(&name) {
                    Some(declared) => {
                        sbx_engine::jobs::event_payload(&revision, &context, now_ms, declared)
                    }
                    None => Err(format!("{name:?} is not in the event catalog")),
                })
                .await?
                .map_err(|m| ServiceError::invalid("/type", m))?
        }
        (None, None) => {
            let known: Vec<&str> = compiled.events.types.keys().map(String::as_str).collect();
            return Err(ServiceError::invalid(
                "/type",
                format!(
                    "{event_type:?} is not in the event catalog, so it has no golden payload: send data, or one of {}",
                    if known.is_empty() {
                        "(none declared)".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    };
    let created_at_ms = sandbox.now_ms();
    let id = state
        .store
        .emit_event(
            id,
            &event_type,
            &data.to_string(),
            created_at_ms,
            Some(&Origin::Control(request_id.into())),
        )
        .await?;
    sandbox.next_delivery.note(created_at_ms);
    Ok(Emitted {
        id,
        event_type,
        data,
        created_at_ms,
    })
}
