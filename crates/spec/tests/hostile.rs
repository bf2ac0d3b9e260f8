//! Hostile and huge documents: every outcome is a value or an error, never
//! a panic or a hang.

use proptest::prelude::*;
use sbx_spec::{Limits, SpecError, load_api};

const PETSTORE: &str = include_str!("../../server/tests/fixtures/petstore.yaml");

#[test]
fn a_20_mb_spec_loads_and_a_larger_one_is_refused() {
    let mut paths = String::new();
    let mut index = 0;
    while paths.len() < 20 * 1024 * 1024 {
        paths.push_str(&format!(
            "\"/r{index}/{{id}}\": {{\"get\": {{\"description\": \"{}\", \"responses\": {{\"200\": {{\"description\": \"ok\", \"content\": {{\"application/json\": {{\"schema\": {{\"$ref\": \"#/components/schemas/S\"}}}}}}}}}}}}}},",
            "d".repeat(400)
        ));
        index += 1;
    }
    paths.pop();
    let spec = format!(
        "{{\"openapi\": \"3.0.3\", \"info\": {{\"title\": \"huge\", \"version\": \"1\"}}, \"paths\": {{{paths}}}, \"components\": {{\"schemas\": {{\"S\": {{\"type\": \"object\"}}}}}}}}"
    );
    assert!(spec.len() >= 20 * 1024 * 1024);
    let model =
        load_api(&spec, &Limits::default()).expect("a 20 MB spec is within the default limit");
    assert_eq!(model.operations.len(), index);
    let small = Limits {
        max_spec_bytes: 16 * 1024 * 1024,
        ..Limits::default()
    };
    assert!(matches!(
        load_api(&spec, &small),
        Err(SpecError::TooLarge { .. })
    ));
}

#[test]
fn pathological_nesting_is_refused_quickly() {
    for doc in [
        format!(
            "{{\"openapi\": \"3.0.0\", \"x\": {}{}}}",
            "[".repeat(1_000_000),
            "]".repeat(1_000_000)
        ),
        format!(
            "openapi: 3.0.0\nx: {}{}",
            "{a: ".repeat(100_000),
            "}".repeat(100_000)
        ),
        format!(
            "openapi: 3.0.0\nx:\n{}",
            (0..200)
                .map(|i| format!("{}- \n", " ".repeat(i * 2)))
                .collect::<String>()
        ),
    ] {
        let started = std::time::Instant::now();
        assert!(load_api(&doc, &Limits::default()).is_err());
        assert!(started.elapsed().as_secs() < 10);
    }
}

#[test]
fn reference_cycles_and_self_references_do_not_loop() {
    let spec = r##"{"openapi": "3.1.0", "info": {"title": "t", "version": "1"},
      "paths": {"/a": {"$ref": "#/paths/~1a"}, "/b": {"get": {"parameters": [{"$ref": "#/components/parameters/P"}],
        "responses": {"200": {"$ref": "#/components/responses/R"}}}}},
      "components": {"parameters": {"P": {"$ref": "#/components/parameters/Q"}, "Q": {"$ref": "#/components/parameters/P"}},
                     "responses": {"R": {"$ref": "#/components/responses/R"}}}}"##;
    let error = load_api(spec, &Limits::default()).unwrap_err();
    let problems = error.problems();
    assert!(
        problems.iter().all(|p| p.message.contains("circular")),
        "{problems:?}"
    );
    // Each reference of a loop is reported where it is.
    let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/components/parameters/P/$ref",
            "/components/parameters/Q/$ref",
            "/components/responses/R/$ref",
            "/paths/~1a/$ref"
        ],
        "{problems:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = load_api(&text, &Limits::default());
    }

    #[test]
    fn mutated_specs_never_panic(cut in 0usize..PETSTORE.len(), insert in "[\\[\\]{}:'\"#&*!|> \n-]{0,8}") {
        let mut text = PETSTORE.to_owned();
        let at = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.insert_str(at, &insert);
        if let Ok(model) = load_api(&text, &Limits::default()) {
            // Whatever loads must also compile into validators without panicking.
            let _ = sbx_spec::SchemaCompiler::new(model.document.clone());
        }
    }
}
