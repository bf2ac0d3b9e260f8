//! Many clients writing to one sandbox at once: every write the sandbox
//! acknowledged is there afterwards, with the body it was acknowledged
//! with, and stays there across a restart.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Client, Method};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::helpers::{Sandbox, send, spawn_app, spawn_app_with};

const CLIENTS: usize = 16;
const CREATES_PER_CLIENT: usize = 60;

/// An open collection: creates, reads, merges (PATCH) and deletes.
const NOTES: &str = r##"
openapi: 3.0.3
info: { title: Notes, version: "1" }
paths:
  /notes:
    post:
      operationId: createNote
      requestBody:
        required: true
        content: { application/json: { schema: { $ref: "#/components/schemas/Note" } } }
      responses:
        "201": { description: created, content: { application/json: { schema: { $ref: "#/components/schemas/Note" } } } }
  /notes/{id}:
    parameters: [{ name: id, in: path, required: true, schema: { type: string } }]
    get:
      operationId: getNote
      responses:
        "200": { description: the note, content: { application/json: { schema: { $ref: "#/components/schemas/Note" } } } }
        "404": { description: none }
    patch:
      operationId: updateNote
      requestBody:
        required: true
        content: { application/json: { schema: { $ref: "#/components/schemas/Note" } } }
      responses:
        "200": { description: updated, content: { application/json: { schema: { $ref: "#/components/schemas/Note" } } } }
        "404": { description: none }
    delete:
      operationId: deleteNote
      responses:
        "204": { description: deleted }
        "404": { description: none }
components:
  schemas:
    Note:
      type: object
      properties:
        id: { type: string, readOnly: true }
        n: { type: integer }
"##;

/// Sends `requests` (method, URL, body) from [`CLIENTS`] concurrent
/// clients; their answers in the same order.
async fn all_at_once(client: &Client, requests: Vec<(Method, String, Value)>) -> Vec<(u16, Value)> {
    let mut set = JoinSet::new();
    let per_client = requests.len().div_ceil(CLIENTS);
    let numbered: Vec<(usize, (Method, String, Value))> =
        requests.into_iter().enumerate().collect();
    for chunk in numbered.chunks(per_client) {
        let client = client.clone();
        let chunk = chunk.to_vec();
        set.spawn(async move {
            let mut answers = Vec::new();
            for (i, (method, url, body)) in chunk {
                let mut request = client.request(method.clone(), url);
                if method != Method::GET && method != Method::DELETE {
                    request = request.json(&body);
                }
                answers.push((i, send(request).await));
            }
            answers
        });
    }
    let mut answers: Vec<(usize, (u16, Value))> = Vec::new();
    while let Some(done) = set.join_next().await {
        answers.extend(done.expect("client task"));
    }
    answers.sort_by_key(|(i, _)| *i);
    answers.into_iter().map(|(_, answer)| answer).collect()
}

/// Creates one record per request at once; the ids and what each
/// acknowledged, every id distinct.
async fn create_concurrently(
    client: &Client,
    url: &str,
    bodies: Vec<Value>,
    member: &str,
) -> BTreeMap<String, Value> {
    let requests = bodies
        .into_iter()
        .map(|body| (Method::POST, url.to_owned(), body))
        .collect();
    let mut acknowledged = BTreeMap::new();
    for (status, body) in all_at_once(client, requests).await {
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_str().expect("an id").to_owned();
        let previous = acknowledged.insert(id.clone(), body[member].clone());
        assert!(
            previous.is_none(),
            "id {id} was acknowledged twice: for {} and for {}",
            previous.unwrap_or_default(),
            body[member]
        );
    }
    acknowledged
}

/// Every acknowledged record reads back with the value it was
/// acknowledged with.
async fn assert_stored(
    client: &Client,
    sandbox: &Sandbox,
    base: &str,
    collection: &str,
    acknowledged: &BTreeMap<String, Value>,
    member: &str,
) {
    for (id, value) in acknowledged {
        let url = format!("{base}/{collection}/{id}");
        let (status, body) = send(client.get(&url)).await;
        assert_eq!(status, 200, "{} {id}: {body}", sandbox.id);
        assert_eq!(
            &body[member], value,
            "{collection} {id} was acknowledged with {value}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_in_one_sandbox_each_get_their_own_id_and_keep_their_body() {
    let mut app = spawn_app().await;
    let payments = app.payments_sandbox("none").await;
    let notes = app.open_sandbox("notes", NOTES).await;
    let total = CLIENTS * CREATES_PER_CLIENT;

    // A scripted create with a lifecycle, and an unscripted collection.
    let card =
        json!({"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030});
    let paid = create_concurrently(
        &app.client,
        &payments.url("/payments"),
        (0..total)
            .map(|i| json!({"amount": 1000 + i, "currency": "usd", "payment_method": card}))
            .collect(),
        "amount",
    )
    .await;
    let customers = create_concurrently(
        &app.client,
        &payments.url("/customers"),
        (0..total)
            .map(|i| json!({"email": format!("c{i}@example.com"), "name": format!("c{i}")}))
            .collect(),
        "email",
    )
    .await;
    let written = create_concurrently(
        &app.client,
        &notes.url("/notes"),
        (0..total).map(|i| json!({"n": i})).collect(),
        "n",
    )
    .await;
    assert_eq!(
        (paid.len(), customers.len(), written.len()),
        (total, total, total)
    );
    for (sandbox, collection, acknowledged, member) in [
        (&payments, "payments", &paid, "amount"),
        (&payments, "customers", &customers, "email"),
        (&notes, "notes", &written, "n"),
    ] {
        assert_stored(
            &app.client,
            sandbox,
            &sandbox.base_url,
            collection,
            acknowledged,
            member,
        )
        .await;
    }

    // And all of it was committed: a restart reads the same records back.
    let path = app.data_dir.path().to_owned();
    app.stop().await;
    let app = spawn_app_with(app.data_dir, |config| config.data_dir = path).await;
    let base = notes.url_on(&app.url, "");
    assert_stored(&app.client, &notes, &base, "notes", &written, "n").await;
    let base = payments.url_on(&app.url, "");
    assert_stored(&app.client, &payments, &base, "payments", &paid, "amount").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_all_land_and_an_acknowledged_delete_stays_deleted() {
    let app = spawn_app().await;
    let notes = app.open_sandbox("notes", NOTES).await;
    let ids: Vec<String> = create_concurrently(
        &app.client,
        &notes.url("/notes"),
        (0..40).map(|i| json!({"n": i})).collect(),
        "n",
    )
    .await
    .into_keys()
    .collect();
    let (merged, deleted) = ids.split_at(20);

    // Eight PATCHes of one note at once, each adding its own member, and
    // PATCHes racing a DELETE on others.
    const FIELDS: usize = 8;
    let mut requests = Vec::new();
    for round in 0..FIELDS {
        for id in merged {
            let url = notes.url(&format!("/notes/{id}"));
            requests.push((Method::PATCH, url, json!({format!("f{round}"): round})));
        }
        for id in deleted {
            let url = notes.url(&format!("/notes/{id}"));
            if round == FIELDS / 2 {
                requests.push((Method::DELETE, url, Value::Null));
            } else {
                requests.push((Method::PATCH, url, json!({format!("f{round}"): round})));
            }
        }
    }
    let answers = all_at_once(&app.client, requests).await;
    let mut gone = BTreeSet::new();
    for (status, body) in &answers {
        assert!(matches!(status, 200 | 204 | 404), "{status}: {body}");
    }
    for (round, chunk) in answers.chunks(merged.len() + deleted.len()).enumerate() {
        for (i, (status, _)) in chunk.iter().enumerate() {
            if i < merged.len() {
                assert_eq!(*status, 200, "a PATCH of a note nobody deletes");
            } else if round == FIELDS / 2 {
                assert_eq!(*status, 204, "the DELETE");
                gone.insert(deleted[i - merged.len()].clone());
            }
        }
    }
    for id in merged {
        let (status, note) = send(app.client.get(notes.url(&format!("/notes/{id}")))).await;
        assert_eq!(status, 200);
        for round in 0..FIELDS {
            assert_eq!(
                note[format!("f{round}")],
                json!(round),
                "note {id} lost an acknowledged update: {note}"
            );
        }
    }
    assert_eq!(gone.len(), deleted.len());
    for id in &gone {
        let (status, note) = send(app.client.get(notes.url(&format!("/notes/{id}")))).await;
        assert_eq!(status, 404, "note {id} was deleted, yet it is back: {note}");
    }
}
