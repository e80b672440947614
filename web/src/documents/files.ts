import { formatBytes } from "../api/errors";
import type { DocumentView } from "../api/types";

/** File name endings the API accepts (docs/api.md, "Documents"), any case. */
export const ACCEPTED_EXTENSIONS = [".txt", ".md", ".markdown", ".pdf", ".html", ".htm"] as const;

/** The `accept` attribute of the file picker. */
export const ACCEPT_ATTRIBUTE = ACCEPTED_EXTENSIONS.join(",");

/** `MAX_UPLOAD_MB` is at most 4 on the server, so larger files can never succeed. */
export const MAX_UPLOAD_BYTES = 4 * 1024 * 1024;

export const UNSUPPORTED_MESSAGE = "Not supported: use .txt, .md, .markdown, .pdf, .html or .htm";
export const TOO_LARGE_MESSAGE = `Too large: the limit is ${formatBytes(MAX_UPLOAD_BYTES)}`;
export const EMPTY_MESSAGE = "Empty file";

export function hasAcceptedExtension(name: string): boolean {
  const lower = name.toLowerCase();
  return ACCEPTED_EXTENSIONS.some((ext) => lower.endsWith(ext) && lower.length > ext.length);
}

/** Why a file cannot be uploaded, checked before anything is sent; null when it may be sent. */
export function precheckFile(file: { name: string; size: number }): string | null {
  if (!hasAcceptedExtension(file.name)) return UNSUPPORTED_MESSAGE;
  if (file.size === 0) return EMPTY_MESSAGE;
  if (file.size > MAX_UPLOAD_BYTES) return TOO_LARGE_MESSAGE;
  return null;
}

export function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

/** "Indexed · 12 chunks · 4 pages" */
export function indexedSummary(doc: Pick<DocumentView, "chunks" | "pages">): string {
  const parts = ["Indexed", plural(doc.chunks, "chunk")];
  if (doc.pages !== null && doc.pages !== undefined) parts.push(plural(doc.pages, "page"));
  return parts.join(" · ");
}

export function failedSummary(doc: Pick<DocumentView, "error">): string {
  return `Failed: ${doc.error?.trim() || "the document could not be indexed."}`;
}

export function byName(a: DocumentView, b: DocumentView): number {
  return a.name.localeCompare(b.name, undefined, { sensitivity: "base" }) || a.id.localeCompare(b.id);
}
