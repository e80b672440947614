//! Backing up the knowledge index with the documents folder, and restoring both.
//!
//! A backup is one tar file: `manifest.json`, `knowledge.db` (a consistent
//! copy of the sqlite index made with `VACUUM INTO`, safe while drains run)
//! and `documents/…` (the shared folder). Private uploads live only in the
//! index (their bytes are dropped once indexed), so the index copy is what
//! preserves them; a rebuild from the folder cannot.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail, ensure};
use flowchat_domain::config::{Config, VectorStore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const FORMAT_VERSION: u32 = 1;
const INDEX_ENTRY: &str = "knowledge.db";
const DOCUMENTS_PREFIX: &str = "documents/";

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub created_at: String,
    pub namespace: String,
    pub index: ManifestFile,
    pub documents: Vec<ManifestFile>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path inside the archive.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn require_sqlite(config: &Config, what: &str) -> anyhow::Result<()> {
    if config.vector_store == VectorStore::Chroma {
        bail!(
            "{what} is not supported with VECTOR_STORE=chroma: back up the Chroma server's data directory instead (the documents folder can be copied as is)"
        );
    }
    Ok(())
}

/// Writes the backup to `out` (through a temporary file renamed at the end,
/// so a failed backup never leaves a truncated archive under that name).
pub fn backup(config: &Config, out: &Path) -> anyhow::Result<Manifest> {
    require_sqlite(config, "backup")?;
    let index_path = config.knowledge_index_file();
    ensure!(
        index_path.exists(),
        "there is no knowledge index at {} (nothing has been indexed in namespace `{}`)",
        index_path.display(),
        config.namespace
    );
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let copy = scratch.path().join(INDEX_ENTRY);
    let conn = rusqlite::Connection::open_with_flags(
        &index_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .with_context(|| format!("opening {}", index_path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // One read transaction: a consistent snapshot even while drains write.
    conn.execute("VACUUM INTO ?1", [copy.to_string_lossy()])
        .context("copying the index (VACUUM INTO)")?;
    drop(conn);
    let index_bytes = std::fs::read(&copy)?;

    let documents_root = PathBuf::from(&config.documents_path);
    let mut documents = Vec::new();
    let mut files = Vec::new();
    if documents_root.is_dir() {
        collect_files(&documents_root, &documents_root, &mut files)?;
    }
    files.sort();

    let partial = out.with_extension("partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut archive = tar::Builder::new(std::io::BufWriter::new(file));
    for relative in &files {
        let bytes = std::fs::read(documents_root.join(relative))?;
        let path = format!("{DOCUMENTS_PREFIX}{relative}");
        documents.push(ManifestFile {
            path: path.clone(),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        });
        append(&mut archive, &path, &bytes)?;
    }
    append(&mut archive, INDEX_ENTRY, &index_bytes)?;
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        created_at: flowchat_startup::now().to_rfc3339(),
        namespace: config.namespace.clone(),
        index: ManifestFile {
            path: INDEX_ENTRY.to_owned(),
            bytes: index_bytes.len() as u64,
            sha256: sha256_hex(&index_bytes),
        },
        documents,
    };
    append(
        &mut archive,
        "manifest.json",
        &serde_json::to_vec_pretty(&manifest)?,
    )?;
    archive
        .into_inner()
        .context("finishing the archive")?
        .flush()?;
    std::fs::rename(&partial, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(manifest)
}

fn append<W: Write>(archive: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_cksum();
    archive
        .append_data(&mut header, path, bytes)
        .with_context(|| format!("adding {path} to the archive"))
}

/// Relative paths (with `/`) of the regular files under `dir`, skipping
/// hidden entries like the folder scan does.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(root, &path, out)?;
        } else if kind.is_file() {
            let relative = path.strip_prefix(root)?;
            let parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}

/// Restores a backup made by [`backup`]: every checksum is verified before
/// anything is written; the index file is replaced atomically, documents are
/// written over the folder (files not in the backup are left alone and
/// reported). Stop the drains first: a running drain keeps the old index
/// file open.
pub fn restore(config: &Config, from: &Path) -> anyhow::Result<RestoreReport> {
    require_sqlite(config, "restore")?;
    let file = std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut entries: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    for entry in archive.entries().context("reading the archive")? {
        let mut entry = entry.context("reading the archive")?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        entries.insert(path, bytes);
    }
    let manifest: Manifest = serde_json::from_slice(
        entries
            .get("manifest.json")
            .context("not a FlowChat backup: manifest.json is missing")?,
    )
    .context("manifest.json is not valid")?;
    ensure!(
        manifest.format_version == FORMAT_VERSION,
        "backup format {} is not supported by this build (expected {FORMAT_VERSION})",
        manifest.format_version
    );
    if manifest.namespace != config.namespace {
        tracing::warn!(
            backup = %manifest.namespace,
            current = %config.namespace,
            "restoring a backup made in another namespace"
        );
    }
    let verify = |item: &ManifestFile| -> anyhow::Result<()> {
        let bytes = entries
            .get(&item.path)
            .with_context(|| format!("the backup is incomplete: {} is missing", item.path))?;
        ensure!(
            sha256_hex(bytes) == item.sha256 && bytes.len() as u64 == item.bytes,
            "the backup is damaged: {} does not match its checksum",
            item.path
        );
        Ok(())
    };
    verify(&manifest.index)?;
    for document in &manifest.documents {
        verify(document)?;
        safe_relative(&document.path)?;
    }

    let documents_root = PathBuf::from(&config.documents_path);
    for document in &manifest.documents {
        let relative = safe_relative(&document.path)?;
        let target = documents_root.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        write_durably(&target, &entries[&document.path])?;
    }
    let index_path = config.knowledge_index_file();
    let index_dir = match index_path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&index_dir)?;
    let staged = index_path.with_extension("restoring");
    write_durably(&staged, &entries[&manifest.index.path])?;
    retire_write_ahead_log(&index_path)?;
    std::fs::rename(&staged, &index_path)
        .with_context(|| format!("replacing {}", index_path.display()))?;
    sync_dir(&index_dir)?;

    let mut kept = Vec::new();
    if documents_root.is_dir() {
        let mut present = Vec::new();
        collect_files(&documents_root, &documents_root, &mut present)?;
        let restored: std::collections::HashSet<String> = manifest
            .documents
            .iter()
            .map(|d| d.path[DOCUMENTS_PREFIX.len()..].to_owned())
            .collect();
        kept = present
            .into_iter()
            .filter(|p| !restored.contains(p))
            .collect();
    }
    Ok(RestoreReport {
        documents: manifest.documents.len(),
        created_at: manifest.created_at,
        not_in_backup: kept,
    })
}

/// Writes `bytes` to `path` and flushes them to the disk before returning, so
/// a crash after the restore reports success cannot leave a torn file.
fn write_durably(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file =
        std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Makes a rename into `dir` durable (the directory entry itself is synced).
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

/// Folds the live index's write-ahead log into its main file and only then
/// removes `-wal`/`-shm`, so that until the staged copy is renamed over it,
/// the index on disk is the old index whole: deleting a log that still held
/// committed transactions, as restore used to, lost them if the rename never
/// happened; leaving it would let SQLite replay the old log over the new file.
fn retire_write_ahead_log(index_path: &Path) -> anyhow::Result<()> {
    if index_path.exists() {
        let conn = rusqlite::Connection::open(index_path)
            .with_context(|| format!("opening {}", index_path.display()))?;
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
            .with_context(|| format!("checkpointing {}", index_path.display()))?;
        ensure!(
            busy == 0,
            "{} is in use (a drain or dev server still has it open): stop them, then restore",
            index_path.display()
        );
        drop(conn);
    }
    for stale in ["-wal", "-shm"] {
        let log = PathBuf::from(format!("{}{stale}", index_path.display()));
        match std::fs::remove_file(&log) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", log.display())),
        }
    }
    Ok(())
}

pub struct RestoreReport {
    pub documents: usize,
    pub created_at: String,
    /// Files in the folder the backup did not have (left in place; the next
    /// scan indexes them).
    pub not_in_backup: Vec<String>,
}

/// `documents/a/b.md` → `a/b.md`, refusing anything that could escape the
/// folder (absolute paths, `..`).
fn safe_relative(path: &str) -> anyhow::Result<PathBuf> {
    let relative = path
        .strip_prefix(DOCUMENTS_PREFIX)
        .with_context(|| format!("unexpected entry {path} in the backup"))?;
    let candidate = PathBuf::from(relative);
    ensure!(
        !relative.is_empty()
            && candidate
                .components()
                .all(|c| matches!(c, Component::Normal(_))),
        "unsafe path {path} in the backup"
    );
    Ok(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(path: &Path) -> i64 {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap()
    }

    /// A drain that died leaves committed transactions in `-wal` only.
    /// Restore used to delete that log before renaming the new index in;
    /// had the rename then failed (or the machine stopped), they were gone.
    #[test]
    fn committed_transactions_in_the_log_survive_retiring_it() {
        let live = tempfile::tempdir().unwrap();
        let crashed = tempfile::tempdir().unwrap();
        let db = live.path().join("knowledge.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);",
        )
        .unwrap();
        // The files as a killed process leaves them: the rows are in the log.
        let index = crashed.path().join("knowledge.db");
        std::fs::copy(&db, &index).unwrap();
        std::fs::copy(
            live.path().join("knowledge.db-wal"),
            crashed.path().join("knowledge.db-wal"),
        )
        .unwrap();
        drop(conn);

        retire_write_ahead_log(&index).unwrap();

        assert!(!crashed.path().join("knowledge.db-wal").exists());
        assert!(!crashed.path().join("knowledge.db-shm").exists());
        assert_eq!(
            rows(&index),
            3,
            "the main file alone holds every committed row"
        );
    }

    #[test]
    fn retiring_the_log_of_a_missing_index_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        retire_write_ahead_log(&dir.path().join("knowledge.db")).unwrap();
    }
}
