//! The pipeline as a pure function: requests through `handle()` with no
//! server, each answer and the trace of how it was decided held in a
//! snapshot (`tests/snapshots/`; `INSTA_UPDATE=always` rewrites them after
//! a deliberate change, and the diff is the review).
//!
//! Every input is fixed (seed, sandbox clock, records), so every answer is
//! too: nothing needs redacting.

mod common;

use std::{path::Path, sync::Arc};

use common::{Sandbox, compile};
use sbx_engine::{AuthMode, CompiledRevision, Outcome, ProjectFiles};
use serde_json::{Value, json};

/// The payments example: fixtures, two behaviours, scenarios, a lifecycle.
fn payments() -> Arc<CompiledRevision> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/payments");
    let spec = std::fs::read_to_string(dir.join("openapi.yaml")).unwrap();
    let files = sbx_engine::project::read_dir(&dir).expect("the example reads");
    compile(&spec, &files)
}

/// What a snapshot holds of an answer: status, headers, body, what it
/// changed, and the trace (stage, verdict, summary).
fn seen(outcome: &Outcome) -> Value {
    let mut headers: Vec<&(String, String)> = outcome.response.headers.iter().collect();
    headers.sort();
    let body = serde_json::from_slice::<Value>(&outcome.response.body).unwrap_or_else(|_| {
        Value::String(String::from_utf8_lossy(&outcome.response.body).into_owned())
    });
    let changes: Vec<Value> = outcome
        .journal
        .changes
        .iter()
        .map(|c| json!({"collection": c.collection, "id": c.id, "deleted": c.value.is_none()}))
        .collect();
    let events: Vec<&str> = outcome
        .journal
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    let trace: Vec<Value> = outcome
        .trace
        .iter()
        .map(|step| {
            let step = serde_json::to_value(step).unwrap();
            json!({"stage": step["stage"], "verdict": step["verdict"], "summary": step["summary"]})
        })
        .collect();
    json!({
        "status": outcome.response.status,
        "headers": headers,
        "body": body,
        "changes": changes,
        "events": events,
        "jobs": outcome.journal.jobs.len(),
        "trace": trace,
    })
}

const CARD: &str = r#"{"amount": 2000, "currency": "usd", "customer": "cus_demo_alice",
    "payment_method": {"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030}}"#;

#[test]
fn a_fixture_is_read_from_the_sandbox_collection() {
    let sandbox = Sandbox::of(payments());
    let outcome = sandbox.send("GET", "/v1/customers/cus_demo_alice", &[], "");
    insta::assert_json_snapshot!(seen(&outcome));
}

#[test]
fn a_behaviour_creates_a_payment_that_enters_its_lifecycle() {
    let sandbox = Sandbox::of(payments());
    let json = [("content-type", "application/json")];
    let created = sandbox.send("POST", "/v1/payments", &json, CARD);
    insta::assert_json_snapshot!("created", seen(&created));
    let id = serde_json::from_slice::<Value>(&created.response.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The engine changes the sandbox's records itself; the server only persists them.
    let read = sandbox.send("GET", &format!("/v1/payments/{id}"), &[], "");
    assert_eq!(read.response.status, 200);
    let cancelled = sandbox.send("POST", &format!("/v1/payments/{id}/cancel"), &json, "{}");
    insta::assert_json_snapshot!("cancelled", seen(&cancelled));
    let again = sandbox.send("POST", &format!("/v1/payments/{id}/cancel"), &json, "{}");
    insta::assert_json_snapshot!("cancelled_twice", seen(&again));
}

#[test]
fn scenarios_answer_by_header_by_rule_and_by_default() {
    let mut sandbox = Sandbox::of(payments());
    let json = ("content-type", "application/json");
    let by_header = sandbox.send(
        "POST",
        "/v1/payments",
        &[json, ("x-sandbox-scenario", "rate_limited")],
        CARD,
    );
    insta::assert_json_snapshot!("by_header", seen(&by_header));
    let declined = CARD.replace("4242424242424242", "4000000000000002");
    let by_rule = sandbox.send("POST", "/v1/payments", &[json], &declined);
    insta::assert_json_snapshot!("by_rule", seen(&by_rule));
    let unknown = sandbox.send(
        "POST",
        "/v1/payments",
        &[json, ("x-sandbox-scenario", "no_such_thing")],
        CARD,
    );
    insta::assert_json_snapshot!("unknown", seen(&unknown));
    sandbox.default_scenario = Some("account_frozen");
    let by_default = sandbox.send("GET", "/v1/accounts/acct_demo_gold", &[], "");
    insta::assert_json_snapshot!("by_default", seen(&by_default));
}

#[test]
fn auth_refuses_a_missing_or_foreign_key_with_a_challenge() {
    let mut sandbox = Sandbox::of(payments());
    sandbox.auth = AuthMode::Spec;
    let missing = sandbox.send("GET", "/v1/customers/cus_demo_alice", &[], "");
    insta::assert_json_snapshot!("missing", seen(&missing));
    let foreign = [("authorization", "Bearer sk_test_other")];
    let refused = sandbox.send("GET", "/v1/customers/cus_demo_alice", &foreign, "");
    assert_eq!(refused.response.status, 401);
    let own = [("authorization", "Bearer sk_test_engine")];
    let allowed = sandbox.send("GET", "/v1/customers/cus_demo_alice", &own, "");
    assert_eq!(allowed.response.status, 200);
}

const PETS: &str = r##"
openapi: 3.0.3
info: { title: Pets, version: "1" }
paths:
  /pets/{id}:
    parameters:
      - { name: id, in: path, required: true, schema: { type: string } }
    get:
      operationId: getPet
      responses:
        "200":
          description: a pet
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Pet" }
              examples:
                rex: { value: { id: "1", name: Rex } }
                tom: { value: { id: "2", name: Tom } }
            text/csv:
              schema: { type: string }
              example: "id,name\n1,Rex\n"
        "404":
          description: none
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Error" }
        "406": { description: no declared type is acceptable }
    delete:
      operationId: deletePet
      responses:
        "204": { description: gone }
        "404": { description: none }
components:
  schemas:
    Pet:
      type: object
      required: [id, name]
      properties: { id: { type: string }, name: { type: string, maxLength: 20 } }
    Error:
      type: object
      required: [message]
      properties: { message: { type: string } }
"##;

#[test]
fn prefer_and_accept_choose_the_declared_response() {
    let sandbox = Sandbox::of(compile(PETS, &ProjectFiles::default()));
    let example = sandbox.send("GET", "/pets/1", &[("prefer", "example=tom")], "");
    insta::assert_json_snapshot!("example", seen(&example));
    let code = sandbox.send("GET", "/pets/1", &[("prefer", "code=404")], "");
    insta::assert_json_snapshot!("code", seen(&code));
    let undeclared = sandbox.send("GET", "/pets/1", &[("prefer", "code=418")], "");
    insta::assert_json_snapshot!("undeclared_code", seen(&undeclared));
    let csv = sandbox.send("GET", "/pets/1", &[("accept", "text/csv")], "");
    insta::assert_json_snapshot!("csv", seen(&csv));
    let refused = sandbox.send("GET", "/pets/1", &[("accept", "application/xml")], "");
    insta::assert_json_snapshot!("not_acceptable", seen(&refused));
}

#[test]
fn a_204_has_no_body_and_a_wrong_method_names_the_allowed_ones() {
    let sandbox = Sandbox::of(compile(PETS, &ProjectFiles::default()));
    let deleted = sandbox.send("DELETE", "/pets/1", &[], "");
    assert_eq!(deleted.response.status, 204);
    assert!(deleted.response.body.is_empty(), "a 204 has no body");
    let wrong = sandbox.send("PUT", "/pets/1", &[], "");
    insta::assert_json_snapshot!("method_not_allowed", seen(&wrong));
    let nowhere = sandbox.send("GET", "/pet/1", &[], "");
    insta::assert_json_snapshot!("no_route", seen(&nowhere));
}

/// A Stripe-shaped API: form bodies with nested keys, one error schema.
const FORMS: &str = r##"
openapi: 3.0.3
info: { title: Forms, version: "1" }
paths:
  /v1/customers:
    post:
      operationId: PostCustomers
      requestBody:
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              additionalProperties: false
              required: [email]
              properties:
                email: { type: string, maxLength: 50 }
                balance: { type: integer }
                metadata:
                  anyOf:
                    - { type: object, additionalProperties: { type: string } }
                    - { type: string, enum: [""] }
                expand: { type: array, items: { type: string } }
            encoding:
              metadata: { style: deepObject, explode: true }
              expand: { style: deepObject, explode: true }
      responses:
        "200":
          description: the customer
          content:
            application/json:
              schema: { $ref: "#/components/schemas/customer" }
        default:
          description: an error
          content:
            application/json:
              schema: { $ref: "#/components/schemas/error" }
  /v1/customers/{customer}:
    get:
      operationId: GetCustomersCustomer
      parameters:
        - { name: customer, in: path, required: true, schema: { type: string } }
      responses:
        "200":
          description: the customer
          content:
            application/json:
              schema: { $ref: "#/components/schemas/customer" }
        default:
          description: an error
          content:
            application/json:
              schema: { $ref: "#/components/schemas/error" }
components:
  schemas:
    customer:
      type: object
      required: [id, email]
      properties:
        id: { type: string }
        email: { type: string }
        balance: { type: integer }
        metadata: { type: object, additionalProperties: { type: string } }
    error:
      type: object
      required: [error]
      properties:
        error:
          type: object
          required: [type]
          properties:
            type: { type: string, enum: [api_error, card_error, idempotency_error, invalid_request_error] }
            code: { type: string, maxLength: 100 }
            param: { type: string, maxLength: 100 }
            message: { type: string, maxLength: 1000 }
            doc_url: { type: string, maxLength: 200 }
            decline_code: { type: string, maxLength: 100 }
"##;

#[test]
fn form_bodies_nest_and_errors_say_what_failed() {
    let mut files = ProjectFiles::default();
    files.settings.errors = serde_yaml_ng::from_str(
        "not_found: { doc_url: 'https://docs.example.com/errors#resource_missing' }",
    )
    .unwrap();
    let sandbox = Sandbox::of(compile(FORMS, &files));
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let created = sandbox.send(
        "POST",
        "/v1/customers",
        &form,
        "email=a%40b.c&balance=12&metadata[order]=42&expand[]=default_source",
    );
    assert_eq!(created.response.status, 200, "{}", seen(&created));
    let body: Value = serde_json::from_slice(&created.response.body).unwrap();
    assert_eq!(body["metadata"], json!({"order": "42"}));
    assert_eq!(body["balance"], json!(12));

    let missing = sandbox.send("POST", "/v1/customers", &form, "metadata[order]=42");
    assert_eq!(missing.response.status, 400);
    let error: Value = serde_json::from_slice(&missing.response.body).unwrap();
    assert_eq!(
        error,
        json!({"error": {"type": "invalid_request_error", "code": "parameter_missing", "message": "\"email\" is a required property", "param": "email",
            "doc_url": "http://sandbox.test/__sbx/errors/missing_parameter"}})
    );

    let undeclared = sandbox.send("POST", "/v1/customers", &form, "email=a&nickname=x");
    let error: Value = serde_json::from_slice(&undeclared.response.body).unwrap();
    assert_eq!(error["error"]["param"], json!("nickname"), "{error}");

    let nested = sandbox.send("POST", "/v1/customers", &form, "email=a&balance=x");
    let error: Value = serde_json::from_slice(&nested.response.body).unwrap();
    assert_eq!(error["error"]["code"], json!("parameter_invalid"));
    assert_eq!(error["error"]["param"], json!("balance"));

    let unknown = sandbox.send("GET", "/v1/customers/cus_nope", &[], "");
    assert_eq!(unknown.response.status, 404, "{}", seen(&unknown));
    let error: Value = serde_json::from_slice(&unknown.response.body).unwrap();
    assert_eq!(error["error"]["type"], json!("invalid_request_error"));
    assert_eq!(error["error"]["code"], json!("resource_missing"));
    assert_eq!(
        error["error"]["doc_url"],
        json!("https://docs.example.com/errors#resource_missing")
    );
}

/// Twilio-shaped: format-suffixed paths, `Sid` ids by pattern, capitalized
/// form fields, page links, and no documented 404.
const MESSAGES: &str = r##"
openapi: 3.0.3
info: { title: Messages, version: "1" }
servers: [{ url: "https://api.twilio.com" }]
paths:
  /Accounts/{AccountSid}/Messages.json:
    parameters:
      - { name: AccountSid, in: path, required: true, schema: { type: string } }
    post:
      operationId: CreateMessage
      requestBody:
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              required: [To]
              properties: { To: { type: string }, Body: { type: string }, Text: { type: string } }
      responses:
        "201":
          description: created
          content:
            application/json: { schema: { $ref: "#/components/schemas/message" } }
    get:
      operationId: ListMessage
      parameters:
        - { name: PageSize, in: query, schema: { type: integer } }
        - { name: PageToken, in: query, schema: { type: string } }
      responses:
        "200":
          description: a page
          content:
            application/json:
              schema:
                type: object
                properties:
                  messages: { type: array, items: { $ref: "#/components/schemas/message" } }
                  next_page_uri: { type: string, nullable: true }
                  uri: { type: string }
  /Accounts/{AccountSid}/Messages/{Sid}.json:
    parameters:
      - { name: AccountSid, in: path, required: true, schema: { type: string } }
      - { name: Sid, in: path, required: true, schema: { type: string } }
    get:
      operationId: FetchMessage
      responses:
        "200":
          description: the message
          content:
            application/json: { schema: { $ref: "#/components/schemas/message" } }
    delete:
      operationId: DeleteMessage
      responses:
        "204": { description: deleted }
components:
  schemas:
    message:
      type: object
      required: [sid, to, status]
      properties:
        sid: { type: string, pattern: "^SM[0-9a-f]{32}$" }
        to: { type: string }
        body: { type: string }
        status: { type: string, enum: [queued, sent] }
        uri: { type: string, example: "/Accounts/AC1/Messages/SM1.json" }
"##;

#[test]
fn records_keep_the_contract_and_links_stay_in_the_sandbox() {
    let sandbox = Sandbox::of(compile(MESSAGES, &ProjectFiles::default()));
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let mut sids = Vec::new();
    for to in ["+1555", "+1556", "+1557"] {
        let created = sandbox.send(
            "POST",
            "/Accounts/AC1/Messages.json",
            &form,
            &format!("To={}&Body=hi", to.replace('+', "%2B")),
        );
        assert_eq!(created.response.status, 201, "{}", seen(&created));
        let body: Value = serde_json::from_slice(&created.response.body).unwrap();
        let sid = body["sid"].as_str().unwrap().to_owned();
        assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
        assert_eq!(body["to"], json!(to), "To is the record's to");
        assert_eq!(
            body["uri"],
            json!(format!("/Accounts/AC1/Messages/{sid}.json"))
        );
        sids.push(sid);
    }
    let page = sandbox.send("GET", "/Accounts/AC1/Messages.json?PageSize=2", &[], "");
    let body: Value = serde_json::from_slice(&page.response.body).unwrap();
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);
    let next = body["next_page_uri"].as_str().unwrap();
    assert_eq!(
        next,
        format!(
            "/Accounts/AC1/Messages.json?PageSize=2&PageToken={}",
            sids[1]
        )
    );
    let last = sandbox.send("GET", next, &[], "");
    let body: Value = serde_json::from_slice(&last.response.body).unwrap();
    assert_eq!(body["messages"][0]["sid"], json!(sids[2]));
    assert_eq!(body["next_page_uri"], Value::Null);

    // No 404 is documented: an unknown sid reads as a record, the same each time.
    let path = format!("/Accounts/AC1/Messages/SM{}.json", "0".repeat(32));
    let unknown = sandbox.send("GET", &path, &[], "");
    assert_eq!(unknown.response.status, 200, "{}", seen(&unknown));
    assert_eq!(
        unknown.response.body,
        sandbox.send("GET", &path, &[], "").response.body
    );
    // A deleted one stays gone.
    let deleted = format!("/Accounts/AC1/Messages/{}.json", sids[0]);
    assert_eq!(
        sandbox.send("DELETE", &deleted, &[], "").response.status,
        204
    );
    assert_eq!(sandbox.send("GET", &deleted, &[], "").response.status, 404);
    // Deleting again is idempotent: no 404 is documented, so the success again.
    assert_eq!(
        sandbox.send("DELETE", &deleted, &[], "").response.status,
        204
    );

    let mut strict = ProjectFiles::default();
    strict.settings.strict_not_found = true;
    let sandbox = Sandbox::of(compile(MESSAGES, &strict));
    assert_eq!(sandbox.send("GET", &path, &[], "").response.status, 404);
}

#[test]
fn the_project_maps_request_members_no_name_rule_can_match() {
    let mut files: ProjectFiles = serde_json::from_value(json!({
        "settings": {"collections": {"Messages": {"members": {"Text": "body"}}}}
    }))
    .unwrap();
    let sandbox = Sandbox::of(compile(MESSAGES, &files));
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let created = sandbox.send(
        "POST",
        "/Accounts/AC1/Messages.json",
        &form,
        "To=1&Text=hello",
    );
    assert_eq!(created.response.status, 201, "{}", seen(&created));
    let body: Value = serde_json::from_slice(&created.response.body).unwrap();
    assert_eq!(body["body"], json!("hello"), "{body}");
    assert!(body.get("Text").is_none(), "{body}");

    // A mapping onto a member the records lack, or a collection nobody serves, is refused.
    files
        .settings
        .collections
        .get_mut("Messages")
        .unwrap()
        .members = [("Text".to_owned(), "text".to_owned())].into();
    files
        .settings
        .collections
        .insert("letters".to_owned(), Default::default());
    let model = sbx_spec::load_api(MESSAGES, &sbx_spec::Limits::default()).unwrap();
    let problems = CompiledRevision::compile_project(model, &files, &Default::default())
        .expect_err("the mapping is refused")
        .0
        .iter()
        .map(|problem| format!("{problem}\n"))
        .collect::<String>();
    assert!(problems.contains("\"Text\" maps to \"text\", which Messages records do not have; members: sid, to, body, status, uri"), "{problems}");
    assert!(
        problems.contains(
            "no operation of the spec serves a collection named \"letters\"; collections: Messages"
        ),
        "{problems}"
    );
}

/// Xero: two templates of the same shape, told apart by their parameters.
const ATTACHMENTS: &str = r##"
openapi: 3.0.3
info: { title: Attachments, version: "1" }
paths:
  /Receipts/{ReceiptID}/Attachments/{AttachmentID}:
    get:
      operationId: byId
      parameters:
        - { name: ReceiptID, in: path, required: true, schema: { type: string, format: uuid } }
        - { name: AttachmentID, in: path, required: true, schema: { type: string, format: uuid } }
      responses:
        "200": { description: by id, content: { application/json: { schema: { type: object, properties: { by: { type: string, enum: [id] } }, required: [by] } } } }
  /Receipts/{ReceiptID}/Attachments/{FileName}:
    get:
      operationId: byName
      parameters:
        - { name: ReceiptID, in: path, required: true, schema: { type: string, format: uuid } }
        - { name: FileName, in: path, required: true, schema: { type: string } }
      responses:
        "200": { description: by name, content: { application/json: { schema: { type: object, properties: { by: { type: string, enum: [name] } }, required: [by] } } } }
"##;

#[test]
fn templates_of_one_shape_are_told_apart_by_their_parameters() {
    let sandbox = Sandbox::of(compile(ATTACHMENTS, &ProjectFiles::default()));
    let receipt = "/Receipts/00000000-0000-0000-0000-000000000000/Attachments";
    for (tail, by) in [
        ("3b1d2a4c-0000-4000-8000-000000000001", "id"),
        ("xero-dev.jpg", "name"),
    ] {
        let answer = sandbox.send("GET", &format!("{receipt}/{tail}"), &[], "");
        assert_eq!(answer.response.status, 200, "{}", seen(&answer));
        let body: Value = serde_json::from_slice(&answer.response.body).unwrap();
        assert_eq!(body["by"], json!(by), "{tail}");
    }
}

/// Azure: one path and method twice, told apart by the body's media type.
const OVERLOADS: &str = r##"
openapi: 3.0.3
info: { title: Faces, version: "1" }
paths:
  /faces:
    post:
      operationId: fromUrl
      requestBody: { content: { application/json: { schema: { type: object, properties: { url: { type: string } } } } } }
      responses:
        "200": { description: by url, content: { application/json: { schema: { type: object, properties: { from: { type: string, enum: [url] } }, required: [from] } } } }
  /faces#overload=stream:
    post:
      operationId: fromStream
      requestBody: { content: { application/octet-stream: { schema: { type: string, format: binary } } } }
      responses:
        "200": { description: by bytes, content: { application/json: { schema: { type: object, properties: { from: { type: string, enum: [stream] } }, required: [from] } } } }
"##;

#[test]
fn one_path_and_method_twice_is_told_apart_by_the_body() {
    let sandbox = Sandbox::of(compile(OVERLOADS, &ProjectFiles::default()));
    for (content_type, body, from) in [
        (
            "application/json",
            r#"{"url": "https://example.com/a.jpg"}"#,
            "url",
        ),
        ("application/octet-stream", "\u{1}\u{2}", "stream"),
    ] {
        let answer = sandbox.send("POST", "/faces", &[("content-type", content_type)], body);
        assert_eq!(answer.response.status, 200, "{}", seen(&answer));
        let body: Value = serde_json::from_slice(&answer.response.body).unwrap();
        assert_eq!(body["from"], json!(from));
    }
}

/// A spec whose example breaks its own schema still answers within it.
const BROKEN_EXAMPLE: &str = r##"
openapi: 3.0.3
info: { title: Courts, version: "1" }
paths:
  /courts/{id}:
    get:
      parameters: [{ name: id, in: path, required: true, schema: { type: string } }]
      responses:
        "200":
          description: a court
          content:
            application/json:
              schema:
                type: object
                required: [name, createdDate]
                properties:
                  name: { type: string }
                  createdDate:
                    anyOf:
                      - { type: string, format: date-time, minLength: 25, maxLength: 25 }
                      - { type: "null" }
              example: { name: Tarrant County Court, createdDate: "2025-10-15T13:53:25.028Z" }
  /judges/{id}:
    get:
      parameters: [{ name: id, in: path, required: true, schema: { type: string } }]
      responses:
        "200":
          description: a judge
          content:
            application/json:
              schema:
                type: object
                required: [judge]
                properties: { judge: { type: string, minLength: 30 } }
              example: { judge: Judy }
"##;

#[test]
fn an_example_that_breaks_its_schema_is_repaired() {
    let sandbox = Sandbox::of(compile(BROKEN_EXAMPLE, &ProjectFiles::default()));
    let answer = sandbox.send("GET", "/courts/c1", &[], "");
    assert_eq!(answer.response.status, 200, "{}", seen(&answer));
    let body: Value = serde_json::from_slice(&answer.response.body).unwrap();
    assert_eq!(
        body["name"],
        json!("Tarrant County Court"),
        "the valid part is kept"
    );
    let date = body["createdDate"].as_str().unwrap_or_default();
    assert!(date.is_empty() || date.len() == 25, "{body}");
    let document = sbx_spec::load_api(BROKEN_EXAMPLE, &Default::default())
        .unwrap()
        .document;
    let schema_of = |path: &str| {
        document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            .clone()
    };
    assert!(
        jsonschema::is_valid(&schema_of("/courts/{id}"), &body),
        "{body}"
    );
    // Another operation's example of the same name is repaired from its own schema.
    let judge = sandbox.send("GET", "/judges/j1", &[], "");
    let judge: Value = serde_json::from_slice(&judge.response.body).unwrap();
    assert!(
        jsonschema::is_valid(&schema_of("/judges/{id}"), &judge),
        "{judge}"
    );
}

/// JSON:API: resources wrapped in `data`, attributes merged, links in it.
const ARTICLES: &str = r##"
openapi: 3.0.3
info: { title: Articles, version: "1" }
paths:
  /articles:
    post:
      operationId: createArticle
      requestBody:
        content:
          application/vnd.api+json:
            schema:
              type: object
              required: [data]
              properties:
                data:
                  type: object
                  required: [type, attributes]
                  properties:
                    type: { type: string, enum: [articles] }
                    attributes: { $ref: "#/components/schemas/attributes" }
      responses:
        "201":
          description: created
          content:
            application/vnd.api+json: { schema: { $ref: "#/components/schemas/document" } }
    get:
      operationId: listArticles
      parameters:
        - { name: "page[size]", in: query, schema: { type: integer } }
      responses:
        "200":
          description: a page
          content:
            application/vnd.api+json:
              schema:
                type: object
                required: [data]
                properties:
                  data: { type: array, items: { $ref: "#/components/schemas/resource" } }
  /articles/{id}:
    parameters:
      - { name: id, in: path, required: true, schema: { type: string } }
    get:
      operationId: getArticle
      responses:
        "200":
          description: the article
          content:
            application/vnd.api+json: { schema: { $ref: "#/components/schemas/document" } }
        "404": { description: none }
    patch:
      operationId: updateArticle
      requestBody:
        content:
          application/vnd.api+json:
            schema:
              type: object
              properties:
                data:
                  type: object
                  properties: { attributes: { type: object, properties: { title: { type: string } } } }
      responses:
        "200":
          description: the article
          content:
            application/vnd.api+json: { schema: { $ref: "#/components/schemas/document" } }
components:
  schemas:
    attributes:
      type: object
      required: [title]
      properties: { title: { type: string }, body: { type: string } }
    resource:
      type: object
      required: [id, type, attributes, links]
      properties:
        id: { type: string }
        type: { type: string, enum: [articles] }
        attributes: { $ref: "#/components/schemas/attributes" }
        links:
          type: object
          required: [self]
          properties: { self: { type: string, format: uri } }
    document:
      type: object
      required: [data]
      properties:
        data: { $ref: "#/components/schemas/resource" }
"##;

#[test]
fn json_api_resources_are_unwrapped_and_linked() {
    let sandbox = Sandbox::of(compile(ARTICLES, &ProjectFiles::default()));
    let json_api = [("content-type", "application/vnd.api+json")];
    let created = sandbox.send(
        "POST",
        "/articles",
        &json_api,
        r#"{"data": {"type": "articles", "attributes": {"title": "Hello", "body": "World"}}}"#,
    );
    assert_eq!(created.response.status, 201, "{}", seen(&created));
    let body: Value = serde_json::from_slice(&created.response.body).unwrap();
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        body["data"]["attributes"],
        json!({"title": "Hello", "body": "World"})
    );
    let url = format!("http://sandbox.test/articles/{id}");
    assert_eq!(body["data"]["links"]["self"], json!(url));

    let read = sandbox.send("GET", &format!("/articles/{id}"), &[], "");
    assert_eq!(read.response.status, 200);
    let body: Value = serde_json::from_slice(&read.response.body).unwrap();
    assert_eq!(body["data"]["id"], json!(id));

    let updated = sandbox.send(
        "PATCH",
        &format!("/articles/{id}"),
        &json_api,
        r#"{"data": {"attributes": {"title": "Hi"}}}"#,
    );
    let body: Value = serde_json::from_slice(&updated.response.body).unwrap();
    assert_eq!(
        body["data"]["attributes"],
        json!({"title": "Hi", "body": "World"})
    );

    let list = sandbox.send("GET", "/articles", &[], "");
    let body: Value = serde_json::from_slice(&list.response.body).unwrap();
    assert_eq!(body["data"][0]["id"], json!(id), "{body}");
    assert_eq!(body["data"][0]["links"]["self"], json!(url));
}
