//! Stateful collections inferred from a spec, with no script: CRUD,
//! paging, filters, nesting, fixtures, reset and seed, persistence.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{send, spawn_app, spawn_app_with};

const LIBRARY: &str = include_str!("../fixtures/library.yaml");

#[tokio::test]
async fn crud_on_a_multi_resource_spec_without_a_script() {
    let app = spawn_app().await;
    let project = app.import_ok("library", LIBRARY).await;
    let collections: Vec<&str> = project["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(collections, ["authors", "books"], "{project}");
    let sandbox = app.create_sandbox(json!({"project": "library"})).await;
    let client = &app.client;

    let (status, ada) = send(
        client
            .post(sandbox.url("/authors"))
            .json(&json!({"name": "Ada Lovelace", "country": "GB"})),
    )
    .await;
    assert_eq!(status, 201, "{ada}");
    assert_eq!(ada["id"], 1, "integer ids count up: {ada}");
    assert_eq!(ada["name"], "Ada Lovelace");
    assert!(ada["created_at"].is_string(), "{ada}");
    for (name, country) in [("Grace Hopper", "US"), ("Alan Turing", "GB")] {
        let (status, _) = send(
            client
                .post(sandbox.url("/authors"))
                .json(&json!({"name": name, "country": country})),
        )
        .await;
        assert_eq!(status, 201);
    }

    let response = client.get(sandbox.url("/authors/1")).send().await.unwrap();
    assert!(response.headers().get("x-sandbox-drift").is_none());
    let (_, read) = crate::helpers::json_of(response).await;
    assert_eq!(read, ada, "GET returns what POST stored");

    // The spec's own paging: limit (default 2) and offset, plus a filter.
    let (_, page) = send(client.get(sandbox.url("/authors"))).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");
    assert_eq!(
        (page["total"].clone(), page["has_more"].clone()),
        (json!(3), json!(true))
    );
    let (_, last) = send(client.get(sandbox.url("/authors?offset=2"))).await;
    assert_eq!(last["items"][0]["name"], "Alan Turing");
    assert_eq!(last["has_more"], false);
    let (_, british) = send(client.get(sandbox.url("/authors?country=GB&limit=10"))).await;
    let names: Vec<&str> = british["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Ada Lovelace", "Alan Turing"]);

    // PATCH merges, PUT replaces what it sends, DELETE removes.
    let (status, patched) = send(
        client
            .patch(sandbox.url("/authors/1"))
            .header("content-type", "application/merge-patch+json")
            .body(r#"{"bio": "Analyst", "country": null}"#),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["bio"].clone(), patched.get("country")),
        (json!("Analyst"), None)
    );
    assert_eq!(patched["created_at"], ada["created_at"]);
    let (status, replaced) = send(
        client
            .put(sandbox.url("/authors/1"))
            .json(&json!({"name": "Augusta Ada King"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (replaced["id"].clone(), replaced["name"].clone()),
        (json!(1), json!("Augusta Ada King"))
    );
    let response = client
        .delete(sandbox.url("/authors/2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, missing) = send(client.get(sandbox.url("/authors/2"))).await;
    assert_eq!(status, 404);
    assert_eq!(
        missing["message"], "no authors record has id \"2\"",
        "the spec's 404 shape: {missing}"
    );
    assert_eq!(send(client.delete(sandbox.url("/authors/2"))).await.0, 404);
    assert_eq!(
        send(
            client
                .put(sandbox.url("/authors/99"))
                .json(&json!({"name": "x"}))
        )
        .await
        .0,
        404
    );
    let (status, after) = send(
        client
            .post(sandbox.url("/authors"))
            .json(&json!({"name": "Edsger"})),
    )
    .await;
    assert_eq!(
        (status, after["id"].clone()),
        (201, json!(4)),
        "ids are never reused"
    );

    // Nested collection: books are scoped by their author; ids are UUIDs.
    let (status, book) = send(
        client
            .post(sandbox.url("/authors/1/books"))
            .json(&json!({"title": "Notes", "year": 1843})),
    )
    .await;
    assert_eq!(status, 201, "{book}");
    let isbn = book["isbn"].as_str().unwrap().to_owned();
    assert_eq!(isbn.len(), 36, "{book}");
    for title in ["Second", "Third"] {
        send(
            client
                .post(sandbox.url("/authors/1/books"))
                .json(&json!({"title": title})),
        )
        .await;
    }
    send(
        client
            .post(sandbox.url("/authors/3/books"))
            .json(&json!({"title": "Computable Numbers"})),
    )
    .await;
    let (_, first) = send(client.get(sandbox.url("/authors/1/books?page_size=2"))).await;
    assert_eq!(first["data"].as_array().unwrap().len(), 2, "{first}");
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) =
        send(client.get(sandbox.url(&format!("/authors/1/books?page_size=2&cursor={cursor}"))))
            .await;
    assert_eq!(rest["data"][0]["title"], "Third", "{rest}");
    assert!(rest.get("next_cursor").is_none(), "{rest}");
    let (_, theirs) = send(client.get(sandbox.url("/authors/3/books"))).await;
    assert_eq!(theirs["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        send(client.get(sandbox.url(&format!("/authors/1/books/{isbn}"))))
            .await
            .0,
        200
    );
    assert_eq!(
        send(client.get(sandbox.url(&format!("/authors/3/books/{isbn}"))))
            .await
            .0,
        404,
        "a book is found under its own author only"
    );

    // Another sandbox of the same project starts empty.
    let other = app.create_sandbox(json!({"project": "library"})).await;
    assert_eq!(send(client.get(other.url("/authors/1"))).await.0, 404);
}

#[tokio::test]
async fn fixtures_reset_seed_and_persistence() {
    let data_dir = tempfile::tempdir().unwrap();
    let path = data_dir.path().to_owned();
    let mut app = spawn_app_with(data_dir, |_| {}).await;
    let (status, project) = send(app.admin(Method::POST, "/projects").json(&json!({
        "name": "library",
        "spec": LIBRARY,
        "fixtures": {"authors": [{"id": 7, "name": "Mary Shelley", "country": "GB"}]},
    })))
    .await;
    assert_eq!(status, 201, "{project}");
    assert_eq!(project["collections"][0]["fixtures"], 1);
    let one = app.create_sandbox(json!({"project": "library"})).await;
    let two = app.create_sandbox(json!({"project": "library"})).await;
    let (_, mary) = send(app.client.get(one.url("/authors/7"))).await;
    assert_eq!(mary["name"], "Mary Shelley");
    assert!(
        mary["created_at"].is_string(),
        "fixtures are completed to the schema: {mary}"
    );
    assert_eq!(
        send(app.client.get(two.url("/authors/7"))).await.1,
        mary,
        "stable in every sandbox"
    );

    let (status, created) = send(
        app.client
            .post(one.url("/authors"))
            .json(&json!({"name": "Percy"})),
    )
    .await;
    assert_eq!(
        (status, created["id"].clone()),
        (201, json!(8)),
        "new ids follow the fixtures'"
    );
    send(app.client.delete(one.url("/authors/7"))).await;

    // Seeding checks every record first: one bad record loads nothing.
    let (status, problem) = send(
        app.admin(Method::POST, &format!("/sandboxes/{}/seed", one.id))
            .json(&json!({"authors": [{"name": "Ok"}, {"name": 12}]})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/authors/1", "{problem}");
    let (status, seeded) = send(
        app.admin(Method::POST, &format!("/sandboxes/{}/seed", one.id))
            .json(&json!({"authors": [{"name": "Byron"}, {"id": 100, "name": "Claire"}]})),
    )
    .await;
    assert_eq!(status, 201, "{seeded}");
    assert_eq!(seeded["created"]["authors"], json!(["9", "100"]));

    // The state survives a restart.
    app.stop().await;
    let app = spawn_app_with(app.data_dir, |config| config.data_dir = path).await;
    assert_eq!(
        send(app.client.get(one.url_on(&app.url, "/authors/7")))
            .await
            .0,
        404
    );
    assert_eq!(
        send(app.client.get(one.url_on(&app.url, "/authors/8")))
            .await
            .1["name"],
        "Percy"
    );
    assert_eq!(
        send(app.client.get(one.url_on(&app.url, "/authors/100")))
            .await
            .1["name"],
        "Claire"
    );
    let (_, shown) = send(app.admin(Method::GET, &format!("/sandboxes/{}", one.id))).await;
    assert_eq!(shown["resources"]["authors"], 3, "{shown}");

    // Reset: back to the fixtures, in memory and on disk.
    let (status, reset) =
        send(app.admin(Method::POST, &format!("/sandboxes/{}/reset", one.id))).await;
    assert_eq!(status, 200, "{reset}");
    assert_eq!(reset["resources"]["authors"], 1);
    assert_eq!(
        send(app.client.get(one.url_on(&app.url, "/authors/7")))
            .await
            .1,
        mary
    );
    assert_eq!(
        send(app.client.get(one.url_on(&app.url, "/authors/8")))
            .await
            .0,
        404
    );
    let (_, recreated) = send(
        app.client
            .post(one.url_on(&app.url, "/authors"))
            .json(&json!({"name": "Percy"})),
    )
    .await;
    assert_eq!(
        recreated["id"], 8,
        "after a reset, the same requests give the same ids"
    );
}

#[tokio::test]
async fn fixtures_that_contradict_the_spec_are_rejected() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"authors": [{"name": 5}]}),
            "fixtures/authors.yaml",
            "/0",
        ),
        (
            json!({"writers": [{"name": "x"}]}),
            "fixtures/writers.yaml",
            "",
        ),
        (json!({"authors": "nope"}), "fixtures/authors.yaml", ""),
    ];
    for (fixtures, file, pointer) in cases {
        let (status, problem) = send(app.admin(Method::POST, "/projects").json(&json!({
            "name": "library", "spec": LIBRARY, "fixtures": fixtures,
        })))
        .await;
        assert_eq!(status, 422, "{problem}");
        let error = &problem["errors"][0];
        assert_eq!(
            (error["location"].as_str(), error["pointer"].as_str()),
            (Some(file), Some(pointer)),
            "{problem}"
        );
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    let (status, _) = send(app.admin(Method::GET, "/projects/library")).await;
    assert_eq!(status, 404, "nothing was imported");
}

#[tokio::test]
async fn an_empty_collection_lists_nothing() {
    let app = spawn_app().await;
    app.import_ok("library", LIBRARY).await;
    let sandbox = app.create_sandbox(json!({"project": "library"})).await;
    let (status, body): (u16, Value) = send(app.client.get(sandbox.url("/authors"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"], json!([]));
}

#[tokio::test]
async fn lists_page_with_page_and_per_page() {
    let spec = r##"{"openapi": "3.1.0", "info": {"title": "tags", "version": "1"}, "paths": {"/tags": {
      "post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Tag"}}}},
               "responses": {"201": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Tag"}}}}}},
      "get": {"parameters": [{"name": "page", "in": "query", "schema": {"type": "integer"}},
                             {"name": "per_page", "in": "query", "schema": {"type": "integer"}}],
              "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
                "type": "object", "required": ["results", "count"],
                "properties": {"results": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
                               "count": {"type": "integer"}}}}}}}}}},
      "components": {"schemas": {"Tag": {"type": "object", "required": ["label"],
        "properties": {"id": {"type": "string"}, "label": {"type": "string"}}}}}}"##;
    let app = spawn_app().await;
    app.import_ok("tags", spec).await;
    let sandbox = app.create_sandbox(json!({"project": "tags"})).await;
    for label in ["a", "b", "c", "d", "e"] {
        let (status, tag) = send(
            app.client
                .post(sandbox.url("/tags"))
                .json(&json!({"label": label})),
        )
        .await;
        assert_eq!(status, 201, "{tag}");
        assert!(tag["id"].as_str().unwrap().starts_with("tag_"), "{tag}");
    }
    let response = app
        .client
        .get(sandbox.url("/tags?page=2&per_page=2"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("x-sandbox-drift").is_none());
    let (_, page) = crate::helpers::json_of(response).await;
    let labels: Vec<&str> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["label"].as_str().unwrap())
        .collect();
    assert_eq!((labels, page["count"].clone()), (vec!["c", "d"], json!(5)));
}

#[tokio::test]
async fn records_of_closed_answers_keep_only_declared_members() {
    let app = crate::helpers::spawn_app().await;
    let note = serde_json::json!({"type": "object", "additionalProperties": false,
        "properties": {"id": {"type": "string"}, "title": {"type": "string"}}});
    let answer = |status: &str| {
        serde_json::json!({status: {"description": "a note",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Note"}}}}})
    };
    let spec = serde_json::json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
        "components": {"schemas": {"Note": note}},
        "paths": {
            "/notes": {"post": {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                                "responses": answer("201")}},
            "/notes/{id}": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                            "get": {"responses": answer("200")},
                            "patch": {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                                      "responses": answer("200")}}}});
    app.import_ok("notes", &spec.to_string()).await;
    let sandbox = app
        .create_sandbox(serde_json::json!({"project": "notes", "auth": "none"}))
        .await;
    let response = app
        .client
        .post(sandbox.url("/notes"))
        .json(&serde_json::json!({"title": "hello", "secret": "not in the contract"}))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("x-sandbox-drift").is_none());
    let (status, created) = crate::helpers::json_of(response).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["title"], "hello");
    assert_eq!(created.get("secret"), None, "{created}");
    let id = created["id"].as_str().expect("the declared id").to_owned();
    let response = app
        .client
        .patch(sandbox.url(&format!("/notes/{id}")))
        .json(&serde_json::json!({"title": "bye", "colour": "red"}))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("x-sandbox-drift").is_none());
    let (_, read) =
        crate::helpers::send(app.client.get(sandbox.url(&format!("/notes/{id}")))).await;
    assert_eq!(read, serde_json::json!({"id": id, "title": "bye"}));
}
