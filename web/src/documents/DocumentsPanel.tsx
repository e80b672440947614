import { useCallback, useEffect, useId, useRef, useState, type KeyboardEvent } from "react";
import { createPortal } from "react-dom";
import type { ApiClient } from "../api/client";
import { describeError } from "../api/errors";
import type { DocumentView } from "../api/types";
import { ConfirmDialog } from "../ConfirmDialog";
import { DocumentList } from "./DocumentList";
import { Uploader } from "./Uploader";
import { useDocuments } from "./useDocuments";
import "./documents.css";

export interface DocumentsPanelProps {
  id: string;
  api: ApiClient;
  onUnauthorized: () => void;
  /** Closes the panel on narrow screens, where it overlays the chat. */
  onClose: () => void;
}

/** Below this width the panel is an overlay opened from the top bar (see documents.css). */
const OVERLAY_QUERY = "(max-width: 1099.98px)";

function isOverlay(): boolean {
  return typeof window !== "undefined" && typeof window.matchMedia === "function" && window.matchMedia(OVERLAY_QUERY).matches;
}

/**
 * The documents panel: upload files, watch them get indexed, and see (and
 * delete) the session's own documents next to the shared ones.
 */
export function DocumentsPanel({ id, api, onUnauthorized, onClose }: DocumentsPanelProps) {
  const headingId = useId();
  const asideRef = useRef<HTMLElement>(null);
  const headingRef = useRef<HTMLHeadingElement>(null);
  const myHeadingRef = useRef<HTMLHeadingElement>(null);
  const { documents, loading, error, deleteError, refresh, remove, clearDeleteError } = useDocuments(api, onUnauthorized);
  const [announcement, setAnnouncement] = useState("");
  const [confirming, setConfirming] = useState<DocumentView | null>(null);
  const [focusMine, setFocusMine] = useState(false);

  const mine = documents.filter((d) => d.scope === "private");
  const shared = documents.filter((d) => d.scope === "shared");

  const announce = useCallback((message: string) => setAnnouncement(message), []);
  const onDocumentChange = useCallback(() => void refresh(), [refresh]);

  const close = useCallback(() => {
    onClose();
    // The panel disappears on narrow screens: give focus back to its toggle.
    if (isOverlay()) asideRef.current?.closest(".workspace")?.querySelector<HTMLElement>(".documents-toggle")?.focus();
  }, [onClose]);

  // When the overlay is opened from the top bar, move focus into it.
  useEffect(() => {
    const workspace = asideRef.current?.closest(".workspace");
    if (!workspace || typeof MutationObserver === "undefined") return;
    let open = workspace.classList.contains("documents-open");
    const observer = new MutationObserver(() => {
      const nowOpen = workspace.classList.contains("documents-open");
      if (nowOpen === open) return;
      open = nowOpen;
      if (nowOpen && isOverlay()) requestAnimationFrame(() => headingRef.current?.focus());
    });
    observer.observe(workspace, { attributes: true, attributeFilter: ["class"] });
    return () => observer.disconnect();
  }, []);

  // After a confirmed delete the row (and its button) is gone: land on the list.
  useEffect(() => {
    if (!focusMine) return;
    myHeadingRef.current?.focus();
    setFocusMine(false);
  }, [focusMine]);

  function onKeyDown(event: KeyboardEvent) {
    if (event.key === "Escape" && !event.defaultPrevented) {
      event.preventDefault();
      close();
    }
  }

  async function confirmDelete(doc: DocumentView) {
    setConfirming(null);
    setFocusMine(true);
    if (await remove(doc)) announce(`${doc.name} deleted`);
  }

  return (
    <aside id={id} ref={asideRef} className="documents-panel" aria-labelledby={headingId} onKeyDown={onKeyDown}>
      <div className="documents-header">
        <h2 id={headingId} ref={headingRef} tabIndex={-1}>
          Documents
        </h2>
        <button type="button" className="documents-close" onClick={close}>
          Close
        </button>
      </div>

      <Uploader api={api} onUnauthorized={onUnauthorized} onDocumentChange={onDocumentChange} announce={announce} />

      {error !== null && (
        <div className="banner banner-error documents-banner" role="alert">
          <span>Could not load your documents. {describeError(error)}</span>
          <button type="button" onClick={() => void refresh()}>
            Retry
          </button>
        </div>
      )}
      {deleteError && (
        <div className="banner banner-error documents-banner" role="alert">
          <span>{deleteError}</span>
          <button type="button" onClick={clearDeleteError}>
            Dismiss
          </button>
        </div>
      )}

      <DocumentList
        title="My documents"
        documents={mine}
        loading={loading}
        emptyText="No documents yet — upload one to ask questions about it."
        onDelete={setConfirming}
        headingRef={myHeadingRef}
      />
      <DocumentList title="Shared documents" documents={shared} loading={loading} emptyText="No shared documents." />

      <div className="visually-hidden" role="status" aria-live="polite">
        {announcement}
      </div>

      {confirming &&
        createPortal(
          <ConfirmDialog
            title="Delete document?"
            confirmLabel="Delete"
            destructive
            onCancel={() => setConfirming(null)}
            onConfirm={() => void confirmDelete(confirming)}
          >
            <p>
              <strong className="doc-name">{confirming.name}</strong> will be removed, and answers will no longer use
              it. This cannot be undone.
            </p>
          </ConfirmDialog>,
          document.body,
        )}
    </aside>
  );
}
