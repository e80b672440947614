import { useCallback, useEffect, useRef, useState } from "react";
import type { ApiClient } from "../api/client";
import { ApiError, describeError } from "../api/errors";
import type { DocumentView } from "../api/types";
import { byName } from "./files";

/** How often the lists refresh while a document is still being indexed. */
export const PENDING_REFRESH_MS = 15_000;

export interface DocumentsState {
  documents: DocumentView[];
  /** True until the first list has arrived (or failed). */
  loading: boolean;
  /** Why the last refresh failed, or null. */
  error: unknown;
  /** A sentence about the last failed delete, or null. */
  deleteError: string | null;
  refresh: () => Promise<void>;
  /** Deletes optimistically; resolves true when the document is gone. */
  remove: (doc: DocumentView) => Promise<boolean>;
  clearDeleteError: () => void;
}

/** The documents this session can see, kept fresh while any is pending. */
export function useDocuments(api: ApiClient, onUnauthorized: () => void): DocumentsState {
  const [documents, setDocuments] = useState<DocumentView[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const [deleteError, setDeleteError] = useState<string | null>(null);
  const seqRef = useRef(0);
  const deletingRef = useRef(new Set<string>());
  const onUnauthorizedRef = useRef(onUnauthorized);
  useEffect(() => {
    onUnauthorizedRef.current = onUnauthorized;
  });

  const refresh = useCallback(async () => {
    const seq = ++seqRef.current;
    try {
      const docs = await api.listDocuments();
      if (seq !== seqRef.current) return; // a newer refresh started
      setDocuments(docs.filter((d) => !deletingRef.current.has(d.id)));
      setError(null);
    } catch (cause) {
      if (seq !== seqRef.current) return;
      if (cause instanceof ApiError && cause.kind === "unauthorized") onUnauthorizedRef.current();
      setError(cause ?? new Error("unknown"));
    } finally {
      if (seq === seqRef.current) setLoading(false);
    }
  }, [api]);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  const hasPending = documents.some((d) => d.status === "pending");
  useEffect(() => {
    if (!hasPending) return;
    const timer = setInterval(() => void refresh(), PENDING_REFRESH_MS);
    return () => clearInterval(timer);
  }, [hasPending, refresh]);

  const remove = useCallback(
    async (doc: DocumentView) => {
      deletingRef.current.add(doc.id);
      setDeleteError(null);
      setDocuments((docs) => docs.filter((d) => d.id !== doc.id));
      try {
        await api.deleteDocument(doc.id);
        return true;
      } catch (cause) {
        // Already gone is what was asked for.
        if (cause instanceof ApiError && cause.kind === "not-found") return true;
        if (cause instanceof ApiError && cause.kind === "unauthorized") onUnauthorizedRef.current();
        setDocuments((docs) => [...docs.filter((d) => d.id !== doc.id), doc].sort(byName));
        setDeleteError(`Could not delete ${doc.name}. ${describeError(cause)}`);
        return false;
      } finally {
        deletingRef.current.delete(doc.id);
        void refresh();
      }
    },
    [api, refresh],
  );

  const clearDeleteError = useCallback(() => setDeleteError(null), []);

  return { documents, loading, error, deleteError, refresh, remove, clearDeleteError };
}
