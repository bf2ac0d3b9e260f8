//! A project revision's source besides the spec: behaviours, templates,
//! fixtures, environment, shared modules and settings. Kept as files in git
//! (see `docs/projects.md`), sent to the control plane as one JSON document,
//! stored with the revision, compiled with it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest single project file read from disk, in bytes.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectFiles {
    /// Rhai source by operation id (`behaviours/<operationId>.rhai`).
    pub behaviours: BTreeMap<String, String>,
    /// minijinja source by file name (`templates/<name>`); a name ending in
    /// `.json.j2` or `.json` declares JSON output.
    pub templates: BTreeMap<String, String>,
    /// Records by collection (`fixtures/<collection>.yaml`): a list, or a map
    /// from id to record.
    pub fixtures: BTreeMap<String, Value>,
    /// Environment parameters (`env.yaml`), overridable per sandbox.
    pub env: serde_json::Map<String, Value>,
    /// Rhai modules by name (`modules/<name>.rhai`), for `import "<name>" as m;`.
    pub modules: BTreeMap<String, String>,
    /// `project.yaml`.
    pub settings: ProjectSettings,
    /// Scenario packs by name (`scenarios/<pack>.yaml`): operation id →
    /// scenario name → outcome.
    pub scenarios: BTreeMap<String, Value>,
    /// Rhai source by job name (`jobs/<name>.rhai`), run by `schedule()`.
    pub jobs: BTreeMap<String, String>,
    /// State machines by collection (`lifecycles/<collection>.yaml`).
    pub lifecycles: BTreeMap<String, Value>,
    /// Event types by name (`events/<type>.yaml`): schema, golden payload.
    pub events: BTreeMap<String, Value>,
    /// Lambda handlers by file name (`functions/<operationId>.py`, `.js`,
    /// `.mjs`, `.cjs`), run in a code session of the sandbox.
    pub functions: BTreeMap<String, String>,
    /// The data files above as written (`fixtures/pets` → YAML text), so an
    /// editor shows their comments and layout again; absent for data sent
    /// as JSON values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub written: BTreeMap<String, String>,
}

/// The folders whose files are data (YAML or JSON), kept parsed.
pub const DATA_FOLDERS: [&str; 4] = ["fixtures", "scenarios", "lifecycles", "events"];

impl ProjectFiles {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn data_mut(&mut self, folder: &str) -> Option<&mut BTreeMap<String, Value>> {
        match folder {
            "fixtures" => Some(&mut self.fixtures),
            "scenarios" => Some(&mut self.scenarios),
            "lifecycles" => Some(&mut self.lifecycles),
            "events" => Some(&mut self.events),
            _ => None,
        }
    }

    /// The text files (scripts, templates) of `folder`; `None` for a data
    /// folder or an unknown one.
    pub fn texts(&self, folder: &str) -> Option<&BTreeMap<String, String>> {
        match folder {
            "behaviours" => Some(&self.behaviours),
            "templates" => Some(&self.templates),
            "modules" => Some(&self.modules),
            "jobs" => Some(&self.jobs),
            "functions" => Some(&self.functions),
            _ => None,
        }
    }

    /// [`Self::texts`], to change.
    pub fn texts_mut(&mut self, folder: &str) -> Option<&mut BTreeMap<String, String>> {
        match folder {
            "behaviours" => Some(&mut self.behaviours),
            "templates" => Some(&mut self.templates),
            "modules" => Some(&mut self.modules),
            "jobs" => Some(&mut self.jobs),
            "functions" => Some(&mut self.functions),
            _ => None,
        }
    }

    /// The data files of `folder` (one of [`DATA_FOLDERS`]).
    pub fn data(&self, folder: &str) -> Option<&BTreeMap<String, Value>> {
        match folder {
            "fixtures" => Some(&self.fixtures),
            "scenarios" => Some(&self.scenarios),
            "lifecycles" => Some(&self.lifecycles),
            "events" => Some(&self.events),
            _ => None,
        }
    }

    /// Parses `text` as the data file `item` of `folder` and keeps it with
    /// its text; whether the file existed before. Problems carry the
    /// parser's line and column.
    pub fn write_data(
        &mut self,
        folder: &str,
        item: &str,
        text: &str,
    ) -> Result<bool, Vec<FileProblem>> {
        let mut problems = Vec::new();
        let file = format!("{folder}/{item}.yaml");
        let Some(value) = parse_data(&file, text, &mut problems) else {
            return Err(problems);
        };
        let Some(data) = self.data_mut(folder) else {
            return Err(vec![FileProblem::new(file, "is not a data folder")]);
        };
        let existed = data.insert(item.to_owned(), value).is_some();
        self.written
            .insert(format!("{folder}/{item}"), text.to_owned());
        Ok(existed)
    }

    /// Removes a data file; whether it existed.
    pub fn remove_data(&mut self, folder: &str, item: &str) -> bool {
        self.written.remove(&format!("{folder}/{item}"));
        self.data_mut(folder)
            .is_some_and(|data| data.remove(item).is_some())
    }

    /// The files that differ from `before`'s, as `(path, change)` with
    /// `change` one of `added`, `removed`, `changed`: `behaviours/createPet`,
    /// `fixtures/accounts`, `env`, `project`.
    pub fn changes_since(&self, before: &Self) -> Vec<(String, &'static str)> {
        let mut changes = Vec::new();
        let texts = [
            ("behaviours", &before.behaviours, &self.behaviours),
            ("templates", &before.templates, &self.templates),
            ("modules", &before.modules, &self.modules),
            ("jobs", &before.jobs, &self.jobs),
            ("functions", &before.functions, &self.functions),
        ];
        for (folder, old, new) in texts {
            compare(folder, old, new, &mut changes);
        }
        for folder in DATA_FOLDERS {
            if let (Some(old), Some(new)) = (before.data(folder), self.data(folder)) {
                compare(folder, old, new, &mut changes);
            }
        }
        if before.env != self.env {
            changes.push(("env".to_owned(), "changed"));
        }
        if before.settings != self.settings {
            changes.push(("project".to_owned(), "changed"));
        }
        changes
    }

    /// Drops written texts that name no data file.
    pub fn forget_stale_writing(&mut self) {
        let mut written = std::mem::take(&mut self.written);
        written.retain(|key, _| {
            key.split_once('/').is_some_and(|(folder, item)| {
                self.data(folder)
                    .is_some_and(|data| data.contains_key(item))
            })
        });
        self.written = written;
    }

    /// A data file as text to edit: as written when the text still says
    /// what is stored, else the stored value rendered as YAML.
    pub fn data_text(&self, folder: &str, item: &str) -> Option<String> {
        let value = self.data(folder)?.get(item)?;
        let written = self.written.get(&format!("{folder}/{item}"));
        let current = written
            .filter(|text| serde_yaml_ng::from_str::<Value>(text).ok().as_ref() == Some(value));
        match current {
            Some(text) => Some(text.clone()),
            None => serde_yaml_ng::to_string(value).ok(),
        }
    }

    /// Reports every file name that is not one plain file name in its
    /// folder: names travel into paths, module imports and messages, so
    /// `../x`, `/etc/x`, a NUL or a control character is refused.
    pub fn check_names(&self, problems: &mut Vec<FileProblem>) {
        let folders: [(&str, Vec<&String>); 9] = [
            ("behaviours", self.behaviours.keys().collect()),
            ("templates", self.templates.keys().collect()),
            ("fixtures", self.fixtures.keys().collect()),
            ("modules", self.modules.keys().collect()),
            ("scenarios", self.scenarios.keys().collect()),
            ("jobs", self.jobs.keys().collect()),
            ("lifecycles", self.lifecycles.keys().collect()),
            ("events", self.events.keys().collect()),
            ("functions", self.functions.keys().collect()),
        ];
        for (folder, names) in folders {
            for name in names {
                if let Err(reason) = plain_file_name(name) {
                    let shown: String = name.escape_debug().take(80).collect();
                    problems.push(FileProblem::new(
                        format!("{folder}/{shown}"),
                        format!("is not a valid file name: {reason}"),
                    ));
                }
            }
        }
    }
}

fn compare<T: PartialEq>(
    folder: &str,
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    changes: &mut Vec<(String, &'static str)>,
) {
    for (name, before) in old {
        match new.get(name) {
            None => changes.push((format!("{folder}/{name}"), "removed")),
            Some(after) if after != before => changes.push((format!("{folder}/{name}"), "changed")),
            Some(_) => {}
        }
    }
    for name in new.keys().filter(|name| !old.contains_key(*name)) {
        changes.push((format!("{folder}/{name}"), "added"));
    }
}

/// Longest name of a project file, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 128;

/// Why `name` is not one plain file name, if it is not.
fn plain_file_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("it is empty")
    } else if name.len() > MAX_FILE_NAME_BYTES {
        Err("it is longer than 128 bytes")
    } else if name.chars().any(char::is_control) {
        Err("it holds a control character (NUL, newline…)")
    } else if name.contains(['/', '\\']) {
        Err("it holds a path separator; files live directly in their folder")
    } else if name.starts_with('.') {
        Err("it starts with a dot")
    } else {
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectSettings {
    /// Answer a 500 problem instead of a response that breaks the spec.
    pub strict_responses: bool,
    /// Answer 404 for an unknown id even where the operation documents no
    /// 404 (by default such a record is materialized: see docs/projects.md).
    pub strict_not_found: bool,
    /// Operations served by an upstream, by operation id.
    pub forward: BTreeMap<String, ForwardRule>,
    /// JSON paths masked in the request log's bodies (`card.number`,
    /// `$..password`), besides credentials, which always are.
    pub redact: Vec<String>,
    /// Exact member values of the error bodies the sandbox answers itself,
    /// by failure (`not_found: {code: resource_missing}`).
    pub errors: BTreeMap<crate::pipeline::failure::FailureKind, serde_json::Map<String, Value>>,
    /// Per collection, what the inference cannot guess (see docs/projects.md).
    pub collections: BTreeMap<String, CollectionSettings>,
    /// Production's published rate limits, mirrored (see docs/accounts.md).
    pub rate_limits: RateLimits,
    /// The sandbox's OAuth 2 / OpenID Connect test provider (docs/oauth.md).
    pub oauth: OAuthSettings,
    /// Limits of function behaviours (`functions/`).
    pub functions: crate::behaviours::functions::FunctionSettings,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthSettings {
    /// Test users every sandbox of the project has, besides those added
    /// through the API.
    pub users: Vec<TestUser>,
}

/// A test user: its subject and the claims its ID tokens and userinfo carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestUser {
    pub sub: String,
    #[serde(default)]
    pub claims: serde_json::Map<String, Value>,
}

/// Rate limits per API key and per sandbox (GCRA: a steady rate with a
/// burst); none by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Each key (each credential) of a sandbox.
    pub per_key: Option<Rate>,
    /// All requests of a sandbox together.
    pub per_sandbox: Option<Rate>,
}

/// A steady rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub requests_per_second: u32,
    /// Requests allowed at once [default: `requests_per_second`].
    pub burst: Option<u32>,
}

/// The highest rate and burst accepted.
pub const MAX_RATE: u32 = 1_000_000;

impl Rate {
    pub fn burst(self) -> u32 {
        self.burst.unwrap_or(self.requests_per_second)
    }

    /// Why it cannot be used, if it cannot.
    pub fn problem(self) -> Option<String> {
        let valid = |n: u32| (1..=MAX_RATE).contains(&n);
        (!valid(self.requests_per_second) || !valid(self.burst()))
            .then(|| format!("requests_per_second and burst must be 1 to {MAX_RATE}"))
    }
}

/// A collection's overrides in `project.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectionSettings {
    /// Request body member → the record member it sets, for names that
    /// neither match exactly nor ignoring case, `_` and `-`
    /// (`MediaUrl: media_urls`).
    pub members: BTreeMap<String, String>,
}

/// Where and how an operation is forwarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardRule {
    /// Upstream URL; `{name}` is replaced by the path (else query)
    /// parameter `name`, `{env.KEY}` by an environment parameter. The
    /// request's query string is appended.
    pub url: String,
    /// Gives up after this many milliseconds (502 problem).
    #[serde(default = "default_forward_timeout_ms")]
    pub timeout_ms: u64,
    /// Headers set on the upstream request (values substituted like `url`).
    #[serde(default)]
    pub set_headers: BTreeMap<String, String>,
    /// Request headers not passed upstream (besides hop-by-hop ones and the
    /// sandbox's own credentials, which never are).
    #[serde(default)]
    pub remove_headers: Vec<String>,
}

fn default_forward_timeout_ms() -> u64 {
    5_000
}

/// A problem with one project file, located as precisely as known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileProblem {
    /// Path inside the project folder, e.g. `behaviours/createPet.rhai`.
    pub file: String,
    /// JSON pointer into a data file, when the problem is in one.
    pub pointer: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl FileProblem {
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            pointer: String::new(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    pub fn at(mut self, line: Option<usize>, column: Option<usize>) -> Self {
        self.line = line;
        self.column = column;
        self
    }

    pub fn pointer(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = pointer.into();
        self
    }
}

/// `file:line:column`, as far as known.
pub(crate) fn write_location(
    f: &mut std::fmt::Formatter<'_>,
    file: &str,
    line: Option<usize>,
    column: Option<usize>,
) -> std::fmt::Result {
    write!(f, "{file}")?;
    if let Some(line) = line {
        write!(f, ":{line}")?;
        if let Some(column) = column {
            write!(f, ":{column}")?;
        }
    }
    Ok(())
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_location(f, &self.file, self.line, self.column)?;
        if !self.pointer.is_empty() {
            write!(f, " at {}", self.pointer)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The spec file names looked for in a project folder, in order.
pub const SPEC_FILE_NAMES: [&str; 3] = ["openapi.yaml", "openapi.yml", "openapi.json"];

/// The spec file of a project folder.
pub fn spec_path(dir: &Path) -> Option<PathBuf> {
    SPEC_FILE_NAMES
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

/// Reads everything but the spec from a project folder (the spec may span
/// several files; the caller bundles it). Every problem found is returned,
/// not just the first.
///
/// Only files inside `dir` are read: a symbolic link that leads out of it
/// (`templates/x.j2 → /proc/self/environ`) or anything but a regular file
/// is reported, never read.
pub fn read_dir(dir: &Path) -> Result<ProjectFiles, Vec<FileProblem>> {
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    let folder = match dir.canonicalize() {
        Ok(folder) => folder,
        Err(error) => return Err(vec![FileProblem::new("", error.to_string())]),
    };
    for folder in [
        "behaviours",
        "modules",
        "templates",
        "fixtures",
        "scenarios",
        "jobs",
        "lifecycles",
        "events",
        "functions",
    ] {
        let Ok(listing) = std::fs::read_dir(dir.join(folder)) else {
            continue;
        };
        for entry in listing.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if path.is_file() && !name.starts_with('.') {
                entries.push(format!("{folder}/{name}"));
            }
        }
    }
    for name in [
        "env.yaml",
        "env.yml",
        "env.json",
        "project.yaml",
        "project.yml",
    ] {
        if dir.join(name).is_file() {
            entries.push(name.to_owned());
        }
    }
    entries.sort();
    let mut sources = Vec::new();
    for entry in entries {
        if let Some(text) = read_text(&folder, &dir.join(&entry), &entry, &mut problems) {
            sources.push((entry, text));
        }
    }
    let files = from_sources(sources.iter().map(|(p, t)| (p.as_str(), t.as_str())));
    match (files, problems.is_empty()) {
        (Ok(files), true) => Ok(files),
        (Ok(_), false) => Err(problems),
        (Err(more), _) => {
            problems.extend(more);
            Err(problems)
        }
    }
}

/// Builds project files from `(path in the folder, text)` pairs, e.g.
/// `("behaviours/createPet.rhai", "…")`. Paths outside the folder format
/// are reported, not ignored.
pub fn from_sources<'a>(
    sources: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<ProjectFiles, Vec<FileProblem>> {
    let mut files = ProjectFiles::default();
    let mut problems = Vec::new();
    for (path, text) in sources {
        let (folder, name) = path.split_once('/').unwrap_or(("", path));
        let stem = |extension: &str| name.strip_suffix(extension).map(str::to_owned);
        match folder {
            "behaviours" | "modules" | "jobs" => match stem(".rhai") {
                Some(stem) => {
                    let target = match folder {
                        "behaviours" => &mut files.behaviours,
                        "modules" => &mut files.modules,
                        _ => &mut files.jobs,
                    };
                    target.insert(stem, text.to_owned());
                }
                None => problems.push(FileProblem::new(path, "scripts must end in .rhai")),
            },
            "templates" => {
                files.templates.insert(name.to_owned(), text.to_owned());
            }
            "functions" => {
                files.functions.insert(name.to_owned(), text.to_owned());
            }
            "fixtures" | "scenarios" | "lifecycles" | "events" => match stem(".yaml")
                .or_else(|| stem(".yml"))
                .or_else(|| stem(".json"))
            {
                Some(name) => {
                    if let Err(more) = files.write_data(folder, &name, text) {
                        problems.extend(more.into_iter().map(|p| FileProblem {
                            file: path.to_owned(),
                            ..p
                        }));
                    }
                }
                None => problems.push(FileProblem::new(
                    path,
                    format!("{folder} must be .yaml, .yml or .json files"),
                )),
            },
            "" if name.starts_with("env.") => match parse_data(path, text, &mut problems) {
                Some(Value::Object(map)) => files.env = map,
                Some(Value::Null) | None => {}
                Some(_) => problems.push(FileProblem::new(
                    path,
                    "must be a map of parameter names to values",
                )),
            },
            "" if name.starts_with("project.") => match parse_data(path, text, &mut problems) {
                Some(Value::Null) | None => {}
                Some(value) => match serde_json::from_value(value) {
                    Ok(settings) => files.settings = settings,
                    Err(error) => problems.push(FileProblem::new(path, error.to_string())),
                },
            },
            _ => problems.push(FileProblem::new(
                path,
                "not part of the project folder format (see docs/projects.md)",
            )),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(problems)
    }
}

/// YAML or JSON data, with the parser's line and column on failure.
pub fn parse_data(file: &str, text: &str, problems: &mut Vec<FileProblem>) -> Option<Value> {
    match serde_yaml_ng::from_str::<Value>(text) {
        Ok(value) => Some(value),
        Err(error) => {
            let location = error.location();
            problems.push(FileProblem::new(file, error.to_string()).at(
                location.as_ref().map(|l| l.line()),
                location.map(|l| l.column()),
            ));
            None
        }
    }
}

fn read_text(
    folder: &Path,
    path: &Path,
    file: &str,
    problems: &mut Vec<FileProblem>,
) -> Option<String> {
    match path.canonicalize() {
        Ok(resolved) if !resolved.starts_with(folder) => {
            problems.push(FileProblem::new(
                file,
                format!(
                    "resolves to {}, outside the project folder; only files inside it are read (copy the file in instead of linking to it)",
                    resolved.display()
                ),
            ));
            return None;
        }
        Err(error) => {
            problems.push(FileProblem::new(file, error.to_string()));
            return None;
        }
        Ok(_) => {}
    }
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            problems.push(FileProblem::new(file, "is not a regular file"));
            return None;
        }
        Ok(meta) if meta.len() > MAX_FILE_BYTES => {
            problems.push(FileProblem::new(
                file,
                format!("is {} bytes; the limit is {MAX_FILE_BYTES}", meta.len()),
            ));
            return None;
        }
        Err(error) => {
            problems.push(FileProblem::new(file, error.to_string()));
            return None;
        }
        Ok(_) => {}
    }
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(error) => {
            problems.push(FileProblem::new(file, error.to_string()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_files_open_as_written_while_the_text_still_says_what_is_stored() {
        let text = "# Who starts here.\n- id: a1 # the first\n";
        let mut files = from_sources([("fixtures/accounts.yaml", text)]).unwrap();
        assert_eq!(files.data_text("fixtures", "accounts").unwrap(), text);

        // Changed as a value (the API's JSON): the stale text is not shown.
        files
            .fixtures
            .insert("accounts".into(), serde_json::json!([{"id": "b2"}]));
        assert_eq!(
            files.data_text("fixtures", "accounts").unwrap(),
            "- id: b2\n"
        );

        files.written.insert("fixtures/gone".into(), "x".into());
        files.forget_stale_writing();
        assert_eq!(files.written.len(), 1, "only texts of existing files stay");
        assert!(files.remove_data("fixtures", "accounts"));
        assert!(files.written.is_empty() && files.fixtures.is_empty());
        assert!(!files.remove_data("fixtures", "accounts"));
    }

    #[test]
    fn changes_between_revisions_are_named_by_file() {
        let before = from_sources([
            ("behaviours/a.rhai", "1"),
            ("behaviours/b.rhai", "2"),
            ("fixtures/pets.yaml", "[1]"),
        ])
        .unwrap();
        let mut after = from_sources([
            ("behaviours/a.rhai", "1"),
            ("templates/t.txt", "x"),
            ("fixtures/pets.yaml", "[2]"),
        ])
        .unwrap();
        after.env.insert("region".into(), "eu".into());
        assert_eq!(
            after.changes_since(&before),
            [
                ("behaviours/b".to_owned(), "removed"),
                ("templates/t.txt".to_owned(), "added"),
                ("fixtures/pets".to_owned(), "changed"),
                ("env".to_owned(), "changed"),
            ]
        );
        assert!(after.changes_since(&after).is_empty());
    }

    #[test]
    fn a_data_mistake_is_reported_at_its_line_in_its_file() {
        let problems = from_sources([("scenarios/pack.yml", "a:\n  b: [1\n")]).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].file, "scenarios/pack.yml");
        assert!(problems[0].line.is_some(), "{:?}", problems[0]);
    }
}
