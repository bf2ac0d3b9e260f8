//! User templates as the server holds them: each a record file
//! (`{data dir}/templates/{name}.json`), its last build's log beside it
//! (`{name}.log`), and its packages in a layer named by the digest of its
//! definition (`layers/{digest}/`), shared by every template defining the
//! same packages and never changed once built.

use std::{collections::BTreeMap, path::PathBuf, sync::Mutex};

use sbx_store::AccountId;
use serde::{Deserialize, Serialize};

use crate::service::templates::TemplateView;

/// A template and who made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemplateRecord {
    pub owner: Option<AccountId>,
    pub view: TemplateView,
}

pub struct Templates {
    root: PathBuf,
    records: Mutex<BTreeMap<String, TemplateRecord>>,
}

impl Templates {
    /// The templates recorded under `root`. A build the last process did
    /// not finish is recorded `failed`: it can be started again. Layers no
    /// template names (left by a delete while sessions ran them, or a
    /// build cut short) are removed.
    pub fn open(root: PathBuf) -> Self {
        let mut records = BTreeMap::new();
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let read = std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<TemplateRecord>(&bytes).ok());
            match read {
                Some(mut record) => {
                    if record.view.status == crate::service::templates::TemplateStatus::Building {
                        record.view.status = crate::service::templates::TemplateStatus::Failed;
                        record.view.error =
                            Some("the server stopped during the build; create it again".into());
                    }
                    records.insert(record.view.name.clone(), record);
                }
                None => {
                    tracing::warn!(file = %path.display(), "an unreadable template record was skipped")
                }
            }
        }
        let named: Vec<&str> = records.values().map(|r| r.view.digest.as_str()).collect();
        let layers = root.join("layers");
        for entry in std::fs::read_dir(&layers).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if !named.iter().any(|digest| name.to_str() == Some(digest)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Self {
            root,
            records: Mutex::new(records),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TemplateRecord>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, name: &str) -> Option<TemplateRecord> {
        self.records().get(name).cloned()
    }

    pub fn all(&self) -> Vec<TemplateRecord> {
        self.records().values().cloned().collect()
    }

    /// Keeps `record` (in memory and in its file).
    pub fn put(&self, record: TemplateRecord) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        let path = self.root.join(format!("{}.json", record.view.name));
        let written = path.with_extension("json.tmp");
        std::fs::write(&written, serde_json::to_vec_pretty(&record)?)?;
        std::fs::rename(&written, &path)?;
        self.records().insert(record.view.name.clone(), record);
        Ok(())
    }

    /// Forgets `name`, its record and its log; whether it existed.
    pub fn remove(&self, name: &str) -> bool {
        let _ = std::fs::remove_file(self.root.join(format!("{name}.json")));
        let _ = std::fs::remove_file(self.log_path(name));
        self.records().remove(name).is_some()
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.log"))
    }

    /// Where the layer of the definition digested as `digest` lives.
    pub fn layer_path(&self, digest: &str) -> PathBuf {
        self.root.join("layers").join(digest)
    }
}
