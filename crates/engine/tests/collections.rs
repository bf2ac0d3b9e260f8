//! Stateful collections keep the contract they are inferred from: for
//! random specs (id members of every kind, closed and open records,
//! response-only required members, list envelopes of every shape, with and
//! without a documented 404), create → read → list → update → delete each
//! answer a documented status with a body that validates against the
//! response schema declared for it.

mod common;

use std::sync::Arc;

use common::{Sandbox, compile};
use proptest::prelude::*;
use sbx_engine::{Outcome, ProjectFiles};
use sbx_spec::{Direction, SchemaCompiler};
use serde_json::{Map, Value, json};

/// How a record names itself and how its path parameter is spelled.
#[derive(Debug, Clone, Copy)]
enum IdStyle {
    /// `id`, a prefixed string under a pattern; `{widgetId}`.
    Pattern,
    /// `id`, an integer.
    Integer,
    /// `id`, `format: uuid`.
    Uuid,
    /// `number` (GitHub's issues); `{widget_number}`.
    Number,
    /// `sid` under `^WD[0-9a-f]{32}$` (Twilio's); `{Sid}`.
    Sid,
}

/// Where a list answer puts its records.
#[derive(Debug, Clone, Copy)]
enum Envelope {
    Bare,
    Data,
    Plural,
}

#[derive(Debug, Clone)]
struct Shape {
    id: IdStyle,
    members: Vec<(String, Value)>,
    required: Vec<bool>,
    closed: bool,
    envelope: Envelope,
    not_found: bool,
    delete_body: bool,
}

fn member_schema() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"type": "string", "maxLength": 40})),
        Just(json!({"type": "integer", "minimum": 0, "maximum": 1000})),
        Just(json!({"type": "number"})),
        Just(json!({"type": "boolean"})),
        Just(json!({"type": "string", "enum": ["red", "green", "blue"]})),
        Just(json!({"type": "string", "format": "date-time"})),
        Just(
            json!({"type": "object", "required": ["x"], "properties": {"x": {"type": "integer"}}})
        ),
        Just(json!({"type": "array", "maxItems": 3, "items": {"type": "string", "maxLength": 10}})),
        Just(json!({"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"})),
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    let id = prop_oneof![
        Just(IdStyle::Pattern),
        Just(IdStyle::Integer),
        Just(IdStyle::Uuid),
        Just(IdStyle::Number),
        Just(IdStyle::Sid),
    ];
    let envelope = prop_oneof![
        Just(Envelope::Bare),
        Just(Envelope::Data),
        Just(Envelope::Plural)
    ];
    (
        id,
        prop::collection::vec(member_schema(), 1..6),
        prop::collection::vec(any::<bool>(), 6),
        any::<bool>(),
        envelope,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(id, schemas, required, closed, envelope, not_found, delete_body)| Shape {
                id,
                members: schemas
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        (
                            ["name", "color", "size", "due_at", "tags", "owner"][i].to_owned(),
                            s,
                        )
                    })
                    .collect(),
                required,
                closed,
                envelope,
                not_found,
                delete_body,
            },
        )
}

impl Shape {
    fn id_member(&self) -> (&'static str, Value) {
        match self.id {
            IdStyle::Pattern => (
                "id",
                json!({"type": "string", "pattern": "^wid_[a-z0-9]{8,20}$"}),
            ),
            IdStyle::Integer => ("id", json!({"type": "integer"})),
            IdStyle::Uuid => ("id", json!({"type": "string", "format": "uuid"})),
            IdStyle::Number => ("number", json!({"type": "integer"})),
            IdStyle::Sid => (
                "sid",
                json!({"type": "string", "pattern": "^WD[0-9a-f]{32}$"}),
            ),
        }
    }

    fn id_param(&self) -> &'static str {
        match self.id {
            IdStyle::Number => "widget_number",
            IdStyle::Sid => "Sid",
            _ => "widgetId",
        }
    }

    /// The spec: `/widgets` and `/widgets/{id}` with every CRUD operation.
    fn spec(&self) -> Value {
        let (id_name, id_schema) = self.id_member();
        let mut record_props = Map::new();
        record_props.insert(id_name.to_owned(), id_schema);
        // Answered, never sent: the request can't fill it.
        record_props.insert(
            "object".to_owned(),
            json!({"type": "string", "enum": ["widget"]}),
        );
        let mut request_props = Map::new();
        let mut required = vec![json!(id_name), json!("object")];
        let mut request_required = Vec::new();
        for ((name, schema), is_required) in self.members.iter().zip(&self.required) {
            record_props.insert(name.clone(), schema.clone());
            request_props.insert(name.clone(), schema.clone());
            if *is_required {
                required.push(json!(name));
                request_required.push(json!(name));
            }
        }
        let mut record =
            json!({"type": "object", "required": required, "properties": record_props});
        if self.closed {
            record["additionalProperties"] = json!(false);
        }
        let list = match self.envelope {
            Envelope::Bare => {
                json!({"type": "array", "items": {"$ref": "#/components/schemas/widget"}})
            }
            Envelope::Data => {
                json!({"type": "object", "required": ["data", "has_more"], "properties": {
                "data": {"type": "array", "items": {"$ref": "#/components/schemas/widget"}},
                "has_more": {"type": "boolean"}, "url": {"type": "string"}}})
            }
            Envelope::Plural => json!({"type": "object", "required": ["widgets"], "properties": {
                "widgets": {"type": "array", "items": {"$ref": "#/components/schemas/widget"}},
                "next_page_uri": {"type": "string", "nullable": true}}}),
        };
        let one = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/widget"}}}, "description": "a widget"});
        let with_404 = |mut responses: Value| {
            if self.not_found {
                responses["404"] = json!({"description": "none", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}}}}});
            }
            responses
        };
        let delete = if self.delete_body {
            json!({"200": {"description": "gone", "content": {"application/json": {"schema": {
                "type": "object", "required": [id_name, "deleted"], "properties": {
                    id_name: record_props[id_name].clone(), "deleted": {"type": "boolean", "enum": [true]}}}}}}})
        } else {
            json!({"204": {"description": "gone"}})
        };
        let body = json!({"required": true, "content": {"application/json": {"schema": {
            "type": "object", "required": request_required, "properties": request_props}}}});
        let patch = json!({"required": true, "content": {"application/json": {"schema": {
            "type": "object", "properties": request_props}}}});
        let param = json!([{"name": self.id_param(), "in": "path", "required": true, "schema": {"type": "string"}}]);
        let item = format!("/widgets/{{{}}}", self.id_param());
        json!({
            "openapi": "3.0.3",
            "info": {"title": "Widgets", "version": "1"},
            "paths": {
                "/widgets": {
                    "post": {"operationId": "createWidget", "requestBody": body, "responses": {"201": one}},
                    "get": {"operationId": "listWidgets", "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                        "responses": {"200": {"description": "a page", "content": {"application/json": {"schema": list}}}}},
                },
                item: {
                    "parameters": param,
                    "get": {"operationId": "getWidget", "responses": with_404(json!({"200": one}))},
                    "patch": {"operationId": "updateWidget", "requestBody": patch, "responses": with_404(json!({"200": one}))},
                    "delete": {"operationId": "deleteWidget", "responses": with_404(delete)},
                },
            },
            "components": {"schemas": {"widget": record}},
        })
    }
}

/// Checks that `outcome` answers a status `operation` documents, with a
/// body that validates against the schema documented for it.
fn conforms(
    document: &Value,
    compiler: &SchemaCompiler,
    path: &str,
    method: &str,
    outcome: &Outcome,
) {
    let status = outcome.response.status;
    let escaped = path.replace('~', "~0").replace('/', "~1");
    let response = format!("/paths/{escaped}/{method}/responses/{status}");
    assert!(
        document.pointer(&response).is_some(),
        "{method} {path} answered an undocumented {status}: {}",
        String::from_utf8_lossy(&outcome.response.body)
    );
    let schema = format!("{response}/content/application~1json/schema");
    if document.pointer(&schema).is_none() {
        return;
    }
    let body: Value = serde_json::from_slice(&outcome.response.body)
        .unwrap_or_else(|e| panic!("{method} {path} answered {status} without JSON ({e})"));
    let validator = compiler.compile(&schema, Direction::Response).unwrap();
    let violations = validator.violations(&body);
    assert!(
        violations.is_empty(),
        "{method} {path} {status} breaks its schema: {:?}\n{body:#}",
        violations
            .iter()
            .map(|v| format!("{}: {}", v.pointer, v.message))
            .collect::<Vec<_>>()
    );
}

/// A valid request body for the schema at `pointer`, drawn from `seed`.
fn body_for(document: &Value, pointer: &str, seed: u64) -> String {
    let patterns = sbx_spec::synth::PatternCache::default();
    let (value, valid) =
        sbx_spec::synth::synthesize_valid(document, pointer, seed, &patterns, None);
    assert!(valid);
    value.to_string()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn crud_answers_validate(shape in shape(), seed in any::<u64>()) {
        let sandbox = Sandbox::of(compile(&shape.spec().to_string(), &ProjectFiles::default()));
        // As loaded: 3.0's `nullable` is `type: [.., "null"]` there.
        let document: Arc<Value> = sandbox.revision.model.document.clone();
        let compiler = SchemaCompiler::new(document.clone()).unwrap();
        let item = format!("/widgets/{{{}}}", shape.id_param());
        let json = [("content-type", "application/json")];
        let create_body = body_for(&document, "/paths/~1widgets/post/requestBody/content/application~1json/schema", seed);

        let mut ids = Vec::new();
        for _ in 0..3 {
            let created = sandbox.send("POST", "/widgets", &json, &create_body);
            conforms(&document, &compiler, "/widgets", "post", &created);
            let body: Value = serde_json::from_slice(&created.response.body).unwrap();
            let id = match &body[shape.id_member().0] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            ids.push(id);
        }
        let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
        prop_assert_eq!(distinct.len(), 3, "ids repeat: {:?}", ids);

        let url = format!("/widgets/{}", ids[0]);
        let read = sandbox.send("GET", &url, &[], "");
        prop_assert_eq!(read.response.status, 200);
        conforms(&document, &compiler, &item, "get", &read);

        let page = sandbox.send("GET", "/widgets?limit=2", &[], "");
        conforms(&document, &compiler, "/widgets", "get", &page);

        let patch_pointer = format!("/paths/{}/patch/requestBody/content/application~1json/schema", item.replace('/', "~1"));
        let patch_body = body_for(&document, &patch_pointer, seed ^ 1);
        let updated = sandbox.send("PATCH", &url, &json, &patch_body);
        prop_assert_eq!(updated.response.status, 200);
        conforms(&document, &compiler, &item, "patch", &updated);

        let unknown = sandbox.send("GET", "/widgets/WD0000", &[], "");
        conforms(&document, &compiler, &item, "get", &unknown);

        let deleted = sandbox.send("DELETE", &url, &[], "");
        conforms(&document, &compiler, &item, "delete", &deleted);
    }
}
