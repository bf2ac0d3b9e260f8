//! Where session workspaces are saved (snapshots): an object store — a
//! folder under the data dir by default, any S3-compatible bucket by
//! configuration (`--snapshot-store s3://bucket/prefix`, credentials and
//! endpoint from the `AWS_*` environment) — one tar archive per snapshot,
//! under its owner's prefix.

use std::{path::Path, sync::Arc};

use anyhow::Context;
use futures_util::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, buffered::BufWriter, path::Path as Key};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

/// A saved snapshot, as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Saved {
    pub name: String,
    /// Bytes of the archive.
    pub size: u64,
    pub saved_at: String,
}

/// The snapshot store.
#[derive(Debug)]
pub struct Snapshots {
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    /// Where it is, for logs (no credentials).
    pub location: String,
}

impl Snapshots {
    /// The store at `url` (with `options`, e.g. `aws_endpoint`), or a
    /// folder `snapshots` in `data_dir` without one.
    pub fn open(
        url: Option<&str>,
        options: &[(String, String)],
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        match url {
            None => {
                let dir = data_dir.join("snapshots");
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("making {}", dir.display()))?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)?;
                Ok(Self {
                    store: Arc::new(store),
                    prefix: Key::default(),
                    location: dir.display().to_string(),
                })
            }
            Some(url) => {
                let parsed = url::Url::parse(url)
                    .with_context(|| format!("the snapshot store {url:?} is not a URL"))?;
                let (store, prefix) =
                    object_store::parse_url_opts(&parsed, options.iter().cloned())
                        .with_context(|| format!("opening the snapshot store {url:?}"))?;
                Ok(Self {
                    store: Arc::from(store),
                    prefix,
                    location: format!(
                        "{}://{}{}",
                        parsed.scheme(),
                        parsed.host_str().unwrap_or_default(),
                        parsed.path()
                    ),
                })
            }
        }
    }

    fn key(&self, owner: &str, name: &str) -> Key {
        self.prefix.clone().join(owner).join(format!("{name}.tar"))
    }

    /// Uploads the archive in `file` as `owner`'s snapshot `name`,
    /// replacing any of that name.
    pub async fn save(
        &self,
        owner: &str,
        name: &str,
        mut file: tokio::fs::File,
    ) -> anyhow::Result<()> {
        let mut writer = BufWriter::new(self.store.clone(), self.key(owner, name));
        tokio::io::copy(&mut file, &mut writer)
            .await
            .context("uploading a snapshot")?;
        writer.shutdown().await.context("uploading a snapshot")
    }

    /// Downloads `owner`'s snapshot `name` into `into`; false when there
    /// is none.
    pub async fn load(
        &self,
        owner: &str,
        name: &str,
        into: &mut tokio::fs::File,
    ) -> anyhow::Result<bool> {
        let found = match self.store.get(&self.key(owner, name)).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(error) => return Err(error).context("downloading a snapshot"),
        };
        let mut chunks = found.into_stream();
        while let Some(chunk) = chunks.next().await {
            into.write_all(&chunk.context("downloading a snapshot")?)
                .await?;
        }
        into.flush().await?;
        Ok(true)
    }

    /// `owner`'s snapshots, by name.
    pub async fn list(&self, owner: &str) -> anyhow::Result<Vec<Saved>> {
        let under = self.prefix.clone().join(owner);
        let mut listed = self.store.list(Some(&under));
        let mut saved = Vec::new();
        while let Some(meta) = listed.next().await {
            let meta = meta.context("listing snapshots")?;
            if let Some(name) = meta
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".tar"))
            {
                saved.push(Saved {
                    name: name.to_owned(),
                    size: meta.size,
                    saved_at: crate::app::rfc3339(meta.last_modified.timestamp_millis()),
                });
            }
        }
        saved.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(saved)
    }

    /// Removes `owner`'s snapshot `name`; false when there was none.
    pub async fn delete(&self, owner: &str, name: &str) -> anyhow::Result<bool> {
        let key = self.key(owner, name);
        match self.store.head(&key).await {
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(error) => return Err(error).context("finding a snapshot"),
            Ok(_) => {}
        }
        self.store
            .delete(&key)
            .await
            .context("removing a snapshot")?;
        Ok(true)
    }
}
