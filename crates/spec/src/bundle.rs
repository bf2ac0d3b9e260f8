//! Bundles a spec split over several files into one document.
//!
//! Every external `$ref` (`common.yaml#/components/schemas/Money`, or a
//! `#/…` reference inside an external file) is replaced by an internal one
//! to a copy of its target, hoisted under the top-level `x-sbx-bundled`
//! member. Each target is copied once, so recursive schemas across files
//! stay finite.
//!
//! Only files inside the spec's own folder are read: an absolute path, a
//! `../` that climbs out, or a symbolic link pointing elsewhere is refused,
//! so importing a cloned repository can never upload `/etc/passwd` or the
//! importing user's environment.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use serde_json::{Map, Value};

use crate::{Limits, SpecError, parse_document, pointer};

/// Files a bundle may pull in.
const MAX_FILES: usize = 256;
const BUNDLE_KEY: &str = "x-sbx-bundled";

struct Bundler {
    limits: Limits,
    files: HashMap<PathBuf, Value>,
    root: PathBuf,
    /// The folder every file read must be inside (canonical).
    folder: PathBuf,
    /// (file, pointer) → internal pointer of its hoisted copy.
    hoisted: HashMap<(PathBuf, String), String>,
    bundled: Map<String, Value>,
    total_bytes: usize,
}

/// Reads the spec at `path` and every file it references.
pub fn bundle_file(path: &Path, limits: &Limits) -> Result<Value, SpecError> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => canonical(parent)?,
        _ => canonical(Path::new("."))?,
    };
    let root = canonical(path)?;
    within(&folder, &root, &path.display().to_string())?;
    let mut bundler = Bundler {
        limits: limits.clone(),
        files: HashMap::new(),
        root: root.clone(),
        folder,
        hoisted: HashMap::new(),
        bundled: Map::new(),
        total_bytes: 0,
    };
    let mut document = bundler.load(&root)?.clone();
    bundler.rewrite(&mut document, &root)?;
    if !bundler.bundled.is_empty()
        && let Value::Object(map) = &mut document
    {
        map.insert(
            BUNDLE_KEY.to_owned(),
            Value::Object(std::mem::take(&mut bundler.bundled)),
        );
    }
    Ok(document)
}

/// Refuses `resolved` (a canonical path, `named` as the spec wrote it)
/// unless it is inside `folder`.
fn within(folder: &Path, resolved: &Path, named: &str) -> Result<(), SpecError> {
    if resolved.starts_with(folder) {
        return Ok(());
    }
    Err(SpecError::single(
        "",
        format!(
            "{named} resolves to {}, outside the spec's folder {}; only files inside it are read (copy the file in, and use no symbolic link that leaves the folder)",
            resolved.display(),
            folder.display()
        ),
    ))
}

fn canonical(path: &Path) -> Result<PathBuf, SpecError> {
    path.canonicalize()
        .map_err(|e| SpecError::single("", format!("cannot read {}: {e}", path.display())))
}

impl Bundler {
    fn load(&mut self, path: &Path) -> Result<&Value, SpecError> {
        if !self.files.contains_key(path) {
            if self.files.len() >= MAX_FILES {
                return Err(SpecError::single(
                    "",
                    format!("the spec references more than {MAX_FILES} files"),
                ));
            }
            let meta = std::fs::metadata(path).map_err(|e| {
                SpecError::single("", format!("cannot read {}: {e}", path.display()))
            })?;
            if !meta.is_file() {
                return Err(SpecError::single(
                    "",
                    format!("{} is not a regular file", path.display()),
                ));
            }
            let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
            if self.total_bytes.saturating_add(size) > self.limits.max_spec_bytes {
                return Err(SpecError::TooLarge {
                    size: self.total_bytes.saturating_add(size),
                    limit: self.limits.max_spec_bytes,
                });
            }
            let text = std::fs::read_to_string(path).map_err(|e| {
                SpecError::single("", format!("cannot read {}: {e}", path.display()))
            })?;
            self.total_bytes += text.len();
            if self.total_bytes > self.limits.max_spec_bytes {
                return Err(SpecError::TooLarge {
                    size: self.total_bytes,
                    limit: self.limits.max_spec_bytes,
                });
            }
            let value = parse_document(&text, &self.limits).map_err(|e| match e {
                SpecError::Invalid(problems) => SpecError::Invalid(
                    problems
                        .into_iter()
                        .map(|mut p| {
                            p.message = format!("{}: {}", path.display(), p.message);
                            p
                        })
                        .collect(),
                ),
                other => other,
            })?;
            self.files.insert(path.to_owned(), value);
        }
        Ok(&self.files[path])
    }

    /// Rewrites the references in `value`, which was read from `file`.
    fn rewrite(&mut self, value: &mut Value, file: &Path) -> Result<(), SpecError> {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    let reference = reference.clone();
                    if let Some(internal) = self.internalize(&reference, file)? {
                        map.insert("$ref".to_owned(), Value::String(internal));
                    }
                }
                for (key, child) in map.iter_mut() {
                    if key != "$ref" {
                        self.rewrite(child, file)?;
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.rewrite(item, file)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The internal reference replacing `reference` found in `file`, or
    /// `None` when it is already internal to the root document.
    fn internalize(&mut self, reference: &str, file: &Path) -> Result<Option<String>, SpecError> {
        let (file_part, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        if file_part.is_empty() && file == self.root {
            return Ok(None);
        }
        if file_part.starts_with("http://") || file_part.starts_with("https://") {
            return Err(SpecError::single(
                "",
                format!(
                    "remote reference \"{reference}\" is not fetched; download it next to the spec and reference the file"
                ),
            ));
        }
        let target_file = if file_part.is_empty() {
            file.to_owned()
        } else {
            if Path::new(file_part).is_absolute() || file_part.starts_with('~') {
                return Err(SpecError::single(
                    "",
                    format!(
                        "reference \"{reference}\" in {} names an absolute path; reference files by a path relative to the spec, inside its folder",
                        file.display()
                    ),
                ));
            }
            let base = file.parent().unwrap_or(Path::new("."));
            let target = canonical(&base.join(file_part))?;
            within(
                &self.folder,
                &target,
                &format!("reference \"{reference}\" in {}", file.display()),
            )?;
            target
        };
        let target_pointer = pointer::ref_to_pointer(&format!("#{fragment}")).unwrap_or_default();
        let key = (target_file.clone(), target_pointer.clone());
        if let Some(internal) = self.hoisted.get(&key) {
            return Ok(Some(format!("#{internal}")));
        }
        if target_file == self.root {
            // A reference back into the root document from another file.
            return Ok(Some(format!("#{target_pointer}")));
        }
        let name = self.unique_name(&target_file, &target_pointer);
        let internal = format!("/{BUNDLE_KEY}/{}", pointer::escape(&name));
        self.hoisted.insert(key, internal.clone());
        let document = self.load(&target_file)?;
        let mut target = document.pointer(&target_pointer).cloned().ok_or_else(|| {
            SpecError::single(
                "",
                format!(
                    "reference \"{reference}\" in {} points to nothing",
                    file.display()
                ),
            )
        })?;
        self.rewrite(&mut target, &target_file)?;
        self.bundled.insert(name, target);
        Ok(Some(format!("#{internal}")))
    }

    fn unique_name(&self, file: &Path, pointer: &str) -> String {
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("file");
        let last = pointer
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("root");
        let base: String = format!("{stem}.{last}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut name = base.clone();
        let mut n = 2;
        while self.bundled.contains_key(&name)
            || self
                .hoisted
                .values()
                .any(|v| v.ends_with(&format!("/{name}")))
        {
            name = format!("{base}_{n}");
            n += 1;
        }
        name
    }
}
