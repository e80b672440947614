//! Brings the index in step with the shared documents folder.
//!
//! The folder is the source of truth for shared documents: whatever is in it
//! (and readable) is indexed, whatever left it is removed. Documents are named
//! by content hash, so an unchanged file costs one read and one hash, and the
//! index is not written at all when nothing changed: the sync can run on every
//! drain start or cron tick.
//!
//! The catalog (the store) is the caller's: the result lists what changed so
//! the caller can mirror it without this crate knowing about the store.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use flowchat_domain::model::{
    DocumentOrigin, DocumentOwner, DocumentRecord, DocumentStatus, IngestFailure, IngestReport,
};
use flowchat_domain::{DocumentId, Timestamp};

use crate::chunking::{ChunkSettings, chunk_document};
use crate::embed::{ChunkEmbedder, embed_chunks};
use crate::error::KnowledgeError;
use crate::index::{IndexedDocument, IndexedSummary, KnowledgeIndex};
use crate::loader::{DocumentFormat, is_supported, load};

/// Files larger than this are not read; they get a failure entry.
pub const MAX_FILE_BYTES: u64 = 20 * 1024 * 1024;

/// What a folder sync did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FolderSync {
    pub report: IngestReport,
    /// Catalog records to write: every document added, updated (new content
    /// or renamed) or failed in this run, with `updated_at` = the sync time.
    /// Unchanged documents are not listed.
    pub upserts: Vec<DocumentRecord>,
    /// Documents removed from the index (deleted from the folder, or replaced
    /// by a new version under the same name): delete them from the catalog.
    pub removals: Vec<DocumentId>,
    /// Every shared document id the folder holds after this run, failed ones
    /// included. Shared catalog records not in this list are stale (e.g. a
    /// failed record whose file was deleted) and can be dropped.
    pub present: Vec<DocumentId>,
}

/// Syncs `index`'s shared documents with the supported files under `root`.
///
/// - Hidden files and folders (names starting with `.`) and files of
///   unsupported formats are skipped silently.
/// - A document's name is its path relative to `root`, with `/` separators.
/// - Files with identical content become one document, named by the first
///   path in sorted order.
/// - A file over [`MAX_FILE_BYTES`], unreadable, or failing to load is listed
///   in `report.failed` and gets a failed catalog record. Failed records of
///   files whose bytes could not be hashed use an id derived from the name.
/// - A missing `root` is logged as a warning and leaves the index as it is
///   (a mount that has not appeared yet must not wipe the shared documents).
/// - An unreadable folder inside `root` fails the whole sync, for the same
///   reason. Errors from the index fail it too; documents indexed before the
///   error stay indexed and the next run picks up from there.
pub async fn sync_shared_folder(
    index: &dyn KnowledgeIndex,
    root: &Path,
    settings: &ChunkSettings,
    now: Timestamp,
) -> Result<FolderSync, KnowledgeError> {
    sync_with_limit(
        index,
        root,
        settings,
        now,
        MAX_FILE_BYTES,
        FolderScan::default(),
    )
    .await
}

/// What a scan must know beyond the folder.
#[derive(Default, Clone, Copy)]
pub struct FolderScan<'a> {
    /// Shared documents that came from uploads, not from the folder: the scan
    /// leaves them alone instead of removing them as absent.
    pub uploads: Option<&'a HashSet<DocumentId>>,
    /// Embeds the chunks of every document the scan indexes.
    pub embedder: Option<&'a dyn ChunkEmbedder>,
}

/// [`sync_shared_folder`] that keeps uploads and embeds what it indexes.
pub async fn sync_shared_folder_with(
    index: &dyn KnowledgeIndex,
    root: &Path,
    settings: &ChunkSettings,
    now: Timestamp,
    scan: FolderScan<'_>,
) -> Result<FolderSync, KnowledgeError> {
    sync_with_limit(index, root, settings, now, MAX_FILE_BYTES, scan).await
}

pub(crate) async fn sync_with_limit(
    index: &dyn KnowledgeIndex,
    root: &Path,
    settings: &ChunkSettings,
    now: Timestamp,
    max_file_bytes: u64,
    scan: FolderScan<'_>,
) -> Result<FolderSync, KnowledgeError> {
    settings.validate()?;
    let mut indexed = index.documents(&DocumentOwner::Shared).await?;
    if let Some(uploads) = scan.uploads {
        indexed.retain(|d| !uploads.contains(&d.id));
    }

    let walk_root = root.to_path_buf();
    let Some(files) = tokio::task::spawn_blocking(move || list_files(&walk_root)).await?? else {
        tracing::warn!(
            root = %root.display(),
            documents = indexed.len(),
            "shared documents folder does not exist; leaving the shared index as it is"
        );
        return Ok(FolderSync {
            present: indexed.into_iter().map(|d| d.id).collect(),
            ..FolderSync::default()
        });
    };

    let mut sync = SyncRun {
        index,
        embedder: scan.embedder,
        settings: *settings,
        now,
        by_id: indexed.iter().map(|d| (d.id.clone(), d)).collect(),
        by_name: indexed.iter().map(|d| (d.name.as_str(), &d.id)).collect(),
        out: FolderSync::default(),
        present: HashSet::new(),
        replaced_names: HashSet::new(),
        kept_names: HashSet::new(),
    };
    for file in files {
        sync.index_file(file, max_file_bytes).await?;
    }
    sync.remove_absent(&indexed).await?;

    let out = sync.out;
    tracing::info!(
        root = %root.display(),
        added = out.report.added,
        updated = out.report.updated,
        unchanged = out.report.unchanged,
        removed = out.report.removed,
        failed = out.report.failed.len(),
        "shared folder synced"
    );
    Ok(out)
}

/// A supported file found under the root.
#[derive(Debug)]
struct FileEntry {
    name: String,
    path: PathBuf,
    size: u64,
}

/// The state of one sync run.
struct SyncRun<'a> {
    index: &'a dyn KnowledgeIndex,
    embedder: Option<&'a dyn ChunkEmbedder>,
    settings: ChunkSettings,
    now: Timestamp,
    by_id: HashMap<DocumentId, &'a IndexedSummary>,
    by_name: HashMap<&'a str, &'a DocumentId>,
    out: FolderSync,
    /// Ids seen in the folder this run (also used to drop duplicate content).
    present: HashSet<DocumentId>,
    /// Names whose old version was replaced by new content (counted as updated).
    replaced_names: HashSet<String>,
    /// Names whose file could not be read: their indexed version is kept.
    kept_names: HashSet<String>,
}

impl SyncRun<'_> {
    async fn index_file(
        &mut self,
        file: FileEntry,
        max_file_bytes: u64,
    ) -> Result<(), KnowledgeError> {
        if file.size > max_file_bytes {
            let err = KnowledgeError::TooLarge {
                name: file.name.clone(),
                size_bytes: file.size,
                limit_bytes: max_file_bytes,
            };
            self.fail(name_derived_id(&file.name), &file.name, file.size, &err);
            return Ok(());
        }

        let path = file.path.clone();
        let read = tokio::task::spawn_blocking(move || {
            std::fs::read(&path).map(|bytes| {
                let id = DocumentId::for_content(&bytes);
                (id, bytes)
            })
        })
        .await?;
        let (id, bytes) = match read {
            Ok(read) => read,
            Err(source) => {
                let err = KnowledgeError::Io {
                    name: file.name.clone(),
                    source,
                };
                self.kept_names.insert(file.name.clone());
                self.fail(name_derived_id(&file.name), &file.name, file.size, &err);
                return Ok(());
            }
        };

        if !self.present.insert(id.clone()) {
            tracing::debug!(name = %file.name, %id, "same content as an earlier file; skipped");
            return Ok(());
        }
        self.out.present.push(id.clone());
        let size = bytes.len() as u64;

        let renamed = match self.by_id.get(&id) {
            Some(existing) if existing.name == file.name => {
                self.out.report.unchanged += 1;
                return Ok(());
            }
            Some(_) => true,
            None => false,
        };

        let name = file.name.clone();
        let settings = self.settings;
        let chunked = tokio::task::spawn_blocking(move || {
            load(&name, &bytes).and_then(|doc| {
                let pages =
                    (doc.format == DocumentFormat::Pdf).then_some(doc.page_starts.len() as u32);
                Ok((chunk_document(&doc, &settings)?, pages))
            })
        })
        .await?;
        let (chunks, pages) = match chunked {
            Ok(chunked) => chunked,
            Err(err) => {
                self.fail(id, &file.name, size, &err);
                return Ok(());
            }
        };

        let chunk_count = chunks.len() as u32;
        // A provider outage fails the whole scan (the job is retried); a
        // document is never indexed without the vectors the index expects.
        let embeddings = embed_chunks(self.embedder, &chunks).await?;
        self.index
            .replace_document(IndexedDocument {
                id: id.clone(),
                name: file.name.clone(),
                owner: DocumentOwner::Shared,
                size_bytes: size,
                chunks,
                embeddings,
            })
            .await?;

        let replaces_old_version = self
            .by_name
            .get(file.name.as_str())
            .is_some_and(|old| **old != id);
        if replaces_old_version {
            self.replaced_names.insert(file.name.clone());
        }
        if renamed || replaces_old_version {
            self.out.report.updated += 1;
        } else {
            self.out.report.added += 1;
        }
        self.out.upserts.push(DocumentRecord {
            id,
            name: file.name,
            owner: DocumentOwner::Shared,
            size_bytes: size,
            status: DocumentStatus::Indexed,
            chunks: chunk_count,
            pages,
            origin: DocumentOrigin::Folder,
            error: None,
            updated_at: self.now,
        });
        Ok(())
    }

    /// Records a file that could not be indexed.
    fn fail(&mut self, id: DocumentId, name: &str, size: u64, err: &KnowledgeError) {
        tracing::warn!(name, error = %err, "shared document not indexed");
        if self.present.insert(id.clone()) {
            self.out.present.push(id.clone());
        }
        self.out.report.failed.push(IngestFailure {
            source: name.to_owned(),
            error: err.to_string(),
        });
        self.out.upserts.push(DocumentRecord {
            id,
            name: name.to_owned(),
            owner: DocumentOwner::Shared,
            size_bytes: size,
            status: DocumentStatus::Failed,
            chunks: 0,
            pages: None,
            origin: DocumentOrigin::Folder,
            error: Some(err.to_string()),
            updated_at: self.now,
        });
    }

    /// Removes indexed shared documents the folder no longer holds.
    async fn remove_absent(&mut self, indexed: &[IndexedSummary]) -> Result<(), KnowledgeError> {
        for doc in indexed {
            if self.present.contains(&doc.id) {
                continue;
            }
            if self.kept_names.contains(&doc.name) {
                // Its file exists but could not be read this time.
                self.present.insert(doc.id.clone());
                self.out.present.push(doc.id.clone());
                continue;
            }
            self.index.remove_document(&doc.id).await?;
            if !self.replaced_names.contains(&doc.name) {
                self.out.report.removed += 1;
            }
            self.out.removals.push(doc.id.clone());
        }
        Ok(())
    }
}

/// An id for a file whose bytes we did not hash (too large, unreadable):
/// stable per name, so repeated failures update one catalog record.
fn name_derived_id(name: &str) -> DocumentId {
    DocumentId::for_content(format!("flowchat-unhashed-file:{name}").as_bytes())
}

/// Every supported, non-hidden file under `root`, sorted by name. `None` when
/// `root` does not exist.
fn list_files(root: &Path) -> Result<Option<Vec<FileEntry>>, KnowledgeError> {
    match std::fs::metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KnowledgeError::Io {
                name: root.display().to_string(),
                source,
            });
        }
        Ok(meta) if !meta.is_dir() => {
            return Err(KnowledgeError::Io {
                name: root.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    "the documents path is not a folder",
                ),
            });
        }
        Ok(_) => {}
    }
    let mut files = Vec::new();
    let mut pending: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let io_err = |source| KnowledgeError::Io {
            name: display_dir(&prefix),
            source,
        };
        for entry in std::fs::read_dir(&dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.starts_with('.') {
                continue;
            }
            let name = format!("{prefix}{file_name}");
            let path = entry.path();
            let file_type = entry.file_type().map_err(io_err)?;
            if file_type.is_dir() {
                pending.push((path, format!("{name}/")));
                continue;
            }
            if !is_supported(&name) {
                continue;
            }
            // Follows symlinks to files; symlinked folders are not walked (no cycles).
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => files.push(FileEntry {
                    name,
                    path,
                    size: meta.len(),
                }),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(name, error = %e, "skipping a file whose metadata cannot be read");
                }
            }
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(files))
}

fn display_dir(prefix: &str) -> String {
    if prefix.is_empty() {
        "the documents folder".to_owned()
    } else {
        format!("folder {}", prefix.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteIndex;

    /// The drain runs syncs in spawned tasks.
    #[test]
    fn the_sync_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let index =
            SqliteIndex::open(tempfile::tempdir().unwrap().path().join("i.sqlite")).unwrap();
        let settings = ChunkSettings::default();
        let future =
            sync_shared_folder(&index, Path::new("x"), &settings, Timestamp::from_millis(0));
        assert_send(&future);
    }

    #[tokio::test]
    async fn files_over_the_limit_fail_with_a_stable_id() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("docs");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("big.md"), "x".repeat(2_000)).unwrap();
        std::fs::write(root.join("small.md"), "tiny").unwrap();
        let index = SqliteIndex::open(dir.path().join("i.sqlite")).unwrap();
        let settings = ChunkSettings::default();
        let now = Timestamp::from_millis(5);

        let first = sync_with_limit(&index, &root, &settings, now, 1_000, FolderScan::default())
            .await
            .unwrap();
        assert_eq!(first.report.added, 1);
        assert_eq!(first.report.failed.len(), 1);
        assert_eq!(
            first.report.failed[0].error,
            "big.md is 2.0 KiB which is over the 1000 bytes limit"
        );
        let failed = first.upserts.iter().find(|r| r.name == "big.md").unwrap();
        assert_eq!(failed.status, DocumentStatus::Failed);
        assert_eq!(failed.size_bytes, 2_000);

        let second = sync_with_limit(&index, &root, &settings, now, 1_000, FolderScan::default())
            .await
            .unwrap();
        let again = second.upserts.iter().find(|r| r.name == "big.md").unwrap();
        assert_eq!(again.id, failed.id);
        assert!(second.present.contains(&failed.id));
    }
}
