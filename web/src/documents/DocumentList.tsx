import { useId, type Ref } from "react";
import { formatBytes } from "../api/errors";
import type { DocumentView } from "../api/types";
import { failedSummary, indexedSummary } from "./files";

interface DocumentListProps {
  title: string;
  documents: DocumentView[];
  loading: boolean;
  emptyText: string;
  /** Present for documents this session may delete. */
  onDelete?: (doc: DocumentView) => void;
  headingRef?: Ref<HTMLHeadingElement>;
}

/** One group of documents ("My documents", "Shared documents"). */
export function DocumentList({ title, documents, loading, emptyText, onDelete, headingRef }: DocumentListProps) {
  const headingId = useId();
  return (
    <section className="doc-section" aria-labelledby={headingId}>
      <h3 id={headingId} ref={headingRef} tabIndex={-1}>
        {title}
      </h3>
      {documents.length === 0 ? (
        <p className="doc-meta doc-empty">{loading ? "Loading documents…" : emptyText}</p>
      ) : (
        <ul className="doc-list">
          {documents.map((doc) => (
            <DocumentRow key={doc.id} doc={doc} onDelete={onDelete} />
          ))}
        </ul>
      )}
    </section>
  );
}

function DocumentRow({ doc, onDelete }: { doc: DocumentView; onDelete?: (doc: DocumentView) => void }) {
  return (
    <li className="doc-item">
      <div className="item-main">
        <span className="doc-name">{doc.name}</span>
        <span className="doc-meta">{formatBytes(doc.size_bytes)}</span>
        <DocumentStatus doc={doc} />
      </div>
      {onDelete && (
        <div className="item-actions">
          <button type="button" aria-label={`Delete ${doc.name}`} onClick={() => onDelete(doc)}>
            Delete
          </button>
        </div>
      )}
    </li>
  );
}

function DocumentStatus({ doc }: { doc: DocumentView }) {
  switch (doc.status) {
    case "pending":
      return (
        <span className="item-status doc-meta">
          <span className="spinner" aria-hidden="true" />
          Indexing…
        </span>
      );
    case "failed":
      return <span className="item-status status-danger">{failedSummary(doc)}</span>;
    case "indexed":
      return <span className="item-status doc-meta">{indexedSummary(doc)}</span>;
  }
}
