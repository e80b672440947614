import { formatBytes } from "../api/errors";
import { indexedSummary } from "./files";
import type { UploadEntry } from "./uploadManager";

interface UploadItemProps {
  entry: UploadEntry;
  onRemove: (key: string) => void;
  onRetry: (key: string) => void;
}

/** One file: staged, uploading, indexing or finished, with what can be done with it now. */
export function UploadItem({ entry, onRemove, onRetry }: UploadItemProps) {
  const name = entry.file.name;
  return (
    <li className={`upload-item upload-${entry.phase}`}>
      <div className="item-main">
        <span className="doc-name">{name}</span>
        <span className="doc-meta">{formatBytes(entry.file.size)}</span>
        <UploadStatus entry={entry} />
      </div>
      <div className="item-actions">
        <UploadActions entry={entry} onRemove={onRemove} onRetry={onRetry} />
      </div>
    </li>
  );
}

function UploadStatus({ entry }: { entry: UploadEntry }) {
  const name = entry.file.name;
  const already = entry.existing ? "Already uploaded · " : "";
  switch (entry.phase) {
    case "staged":
      return null;
    case "invalid":
    case "failed":
    case "error":
      return <span className="item-status status-danger">{entry.message}</span>;
    case "queued":
      return <span className="item-status doc-meta">Waiting to upload…</span>;
    case "uploading":
      return (
        <span className="item-status upload-progress">
          <progress max={100} value={entry.progress} aria-label={`Uploading ${name}`} />
          <span className="doc-meta progress-text">{entry.progress}%</span>
        </span>
      );
    case "indexing":
      return (
        <span className="item-status doc-meta">
          <span className="spinner" aria-hidden="true" />
          {already}Indexing…
        </span>
      );
    case "indexed":
      return (
        <span className="item-status status-success">
          {already}
          {entry.document ? indexedSummary(entry.document) : "Indexed"}
        </span>
      );
  }
}

function UploadActions({ entry, onRemove, onRetry }: UploadItemProps) {
  const name = entry.file.name;
  switch (entry.phase) {
    case "staged":
    case "invalid":
      return (
        <button type="button" aria-label={`Remove ${name}`} onClick={() => onRemove(entry.key)}>
          Remove
        </button>
      );
    case "queued":
    case "uploading":
      return (
        <button type="button" aria-label={`Cancel upload of ${name}`} onClick={() => onRemove(entry.key)}>
          Cancel
        </button>
      );
    case "indexing":
      return null;
    case "indexed":
    case "failed":
    case "error":
      return (
        <>
          {entry.phase === "error" && entry.retryable && (
            <button type="button" aria-label={`Retry ${name}`} onClick={() => onRetry(entry.key)}>
              Retry
            </button>
          )}
          <button type="button" aria-label={`Dismiss ${name}`} onClick={() => onRemove(entry.key)}>
            Dismiss
          </button>
        </>
      );
  }
}
