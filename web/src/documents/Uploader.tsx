import { useRef, useState, type DragEvent } from "react";
import type { ApiClient } from "../api/client";
import { formatBytes } from "../api/errors";
import { ACCEPT_ATTRIBUTE, MAX_UPLOAD_BYTES, plural } from "./files";
import { UploadItem } from "./UploadItem";
import { STAGED_PHASES, type UploadEntry } from "./uploadManager";
import { useUploads } from "./useUploads";

interface UploaderProps {
  api: ApiClient;
  onUnauthorized: () => void;
  /** A document was added or finished indexing. */
  onDocumentChange: () => void;
  announce: (message: string) => void;
}

/**
 * Files are chosen (button) or dropped, listed with their size and any
 * problem, and only sent when the person says so; then each shows its
 * progress and indexing until it is done.
 */
export function Uploader({ api, onUnauthorized, onDocumentChange, announce }: UploaderProps) {
  const { entries, manager } = useUploads(api, { onUnauthorized, onDocumentChange, announce });
  const inputRef = useRef<HTMLInputElement>(null);
  const chooseRef = useRef<HTMLButtonElement>(null);
  const dragDepth = useRef(0);
  const [dragging, setDragging] = useState(false);

  const staged = entries.filter((e) => STAGED_PHASES.has(e.phase));
  const sendable = staged.filter((e) => e.phase === "staged").length;
  const sending = entries.filter((e) => !STAGED_PHASES.has(e.phase));

  function carriesFiles(event: DragEvent): boolean {
    const types = event.dataTransfer?.types;
    return !types || Array.from(types).includes("Files");
  }

  function onDragEnter(event: DragEvent) {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    dragDepth.current += 1;
    setDragging(true);
  }

  function onDragOver(event: DragEvent) {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
  }

  function onDragLeave() {
    dragDepth.current = Math.max(0, dragDepth.current - 1);
    if (dragDepth.current === 0) setDragging(false);
  }

  function onDrop(event: DragEvent) {
    event.preventDefault();
    dragDepth.current = 0;
    setDragging(false);
    const files = event.dataTransfer?.files;
    if (files && files.length > 0) manager.stage(Array.from(files));
  }

  /** Keeps keyboard focus somewhere sensible when the focused control goes away. */
  /** Staged and sent files are listed alike: remove (cancels) and retry. */
  function uploadList(label: string, entries: UploadEntry[]) {
    return (
      <ul className="upload-list" aria-label={label}>
        {entries.map((entry) => (
          <UploadItem
            key={entry.key}
            entry={entry}
            onRemove={(key) => {
              manager.remove(key);
              refocus();
            }}
            onRetry={(key) => manager.retry(key)}
          />
        ))}
      </ul>
    );
  }

  function refocus() {
    requestAnimationFrame(() => {
      if (!document.activeElement || document.activeElement === document.body) chooseRef.current?.focus();
    });
  }

  return (
    <section className="uploader" aria-label="Upload documents">
      <div
        className={`drop-zone${dragging ? " is-dragging" : ""}`}
        onDragEnter={onDragEnter}
        onDragOver={onDragOver}
        onDragLeave={onDragLeave}
        onDrop={onDrop}
      >
        <p className="drop-zone-text">{dragging ? "Drop to add these files" : "Drag files here, or"}</p>
        <button type="button" className="primary" ref={chooseRef} onClick={() => inputRef.current?.click()}>
          Upload documents
        </button>
        <p className="doc-meta drop-zone-hint">
          .txt, .md, .markdown, .pdf, .html or .htm, up to {formatBytes(MAX_UPLOAD_BYTES)} each. Only you can see
          what you upload.
        </p>
        <input
          ref={inputRef}
          type="file"
          multiple
          accept={ACCEPT_ATTRIBUTE}
          aria-label="Choose files to upload"
          hidden
          onChange={(event) => {
            const files = event.currentTarget.files;
            if (files && files.length > 0) manager.stage(Array.from(files));
            event.currentTarget.value = ""; // the same file can be chosen again
          }}
        />
      </div>

      {staged.length > 0 && (
        <div className="staged">
          {uploadList("Files to upload", staged)}
          <div className="staged-actions">
            {sendable > 0 && (
              <button
                type="button"
                className="primary"
                onClick={() => {
                  manager.sendStaged();
                  refocus();
                }}
              >
                Upload {plural(sendable, "file")}
              </button>
            )}
            <button
              type="button"
              onClick={() => {
                manager.clearStaged();
                refocus();
              }}
            >
              Clear
            </button>
          </div>
        </div>
      )}

      {sending.length > 0 && uploadList("Uploads", sending)}
    </section>
  );
}
