import type { ApiClient } from "../api/client";
import { ApiError, describeError } from "../api/errors";
import type { DocumentView } from "../api/types";
import { failedSummary, precheckFile } from "./files";

/**
 * Where one file is:
 * staged → queued → uploading → indexing → indexed | failed, or error on the way;
 * invalid when a pre-check refused it (it is never sent).
 */
export type UploadPhase = "staged" | "invalid" | "queued" | "uploading" | "indexing" | "indexed" | "failed" | "error";

export interface UploadEntry {
  key: string;
  file: File;
  phase: UploadPhase;
  /** 0–100 while uploading. */
  progress: number;
  /** The pre-check problem (invalid), the failure reason (failed) or the error sentence (error). */
  message?: string;
  /** The server already had this file (200, no job). */
  existing: boolean;
  /** An error worth trying again (offline, rate limit, server trouble). */
  retryable: boolean;
  document?: DocumentView;
}

export interface UploadCallbacks {
  onUnauthorized?: () => void;
  /** A document was added or changed state: refresh the lists. */
  onDocumentChange?: () => void;
  /** A sentence for the live region. */
  announce?: (message: string) => void;
}

export const FINISHED_PHASES: ReadonlySet<UploadPhase> = new Set(["indexed", "failed", "error"]);
export const STAGED_PHASES: ReadonlySet<UploadPhase> = new Set(["staged", "invalid"]);

/** Milliseconds before the n-th status check: 1 s at first, backing off to 3 s. */
export function pollDelay(attempt: number): number {
  return Math.min(3000, 1000 + Math.max(0, attempt - 1) * 500);
}

const MAX_POLL_ERRORS = 5;
const RETRYABLE = new Set(["offline", "rate-limited", "server", "unavailable"]);

/**
 * The upload queue, outside React so that it is one object with one state:
 * files upload one after another, then their document is polled until it is
 * indexed or failed. Components read it through `useUploads`.
 */
export class UploadManager {
  callbacks: UploadCallbacks = {};
  private entries: UploadEntry[] = [];
  private readonly listeners = new Set<() => void>();
  private queue: string[] = [];
  private active = 0;
  private readonly controllers = new Map<string, AbortController>();
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();
  private disposed = false;
  private seq = 0;

  constructor(
    private readonly api: ApiClient,
    private readonly concurrency = 1,
  ) {}

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): UploadEntry[] => this.entries;

  /** Lists files before anything is sent, flagging those that cannot be. */
  stage(files: Iterable<File>): void {
    const added: UploadEntry[] = [];
    for (const file of files) {
      const duplicate = this.entries.some(
        (e) =>
          STAGED_PHASES.has(e.phase) &&
          e.file.name === file.name &&
          e.file.size === file.size &&
          e.file.lastModified === file.lastModified,
      );
      if (duplicate) continue;
      const problem = precheckFile(file);
      added.push({
        key: `upload-${++this.seq}`,
        file,
        phase: problem ? "invalid" : "staged",
        progress: 0,
        message: problem ?? undefined,
        existing: false,
        retryable: false,
      });
    }
    if (added.length === 0) return;
    this.entries = [...this.entries, ...added];
    this.emit();
  }

  /** Sends every staged file that passed the pre-checks. */
  sendStaged(): number {
    const keys = this.entries.filter((e) => e.phase === "staged").map((e) => e.key);
    if (keys.length === 0) return 0;
    this.entries = this.entries.map((e) => (e.phase === "staged" ? { ...e, phase: "queued", progress: 0 } : e));
    this.queue.push(...keys);
    this.emit();
    this.pump();
    return keys.length;
  }

  /** Sends a file that failed with a passing error again. */
  retry(key: string): void {
    const entry = this.get(key);
    if (!entry || entry.phase !== "error") return;
    this.patch(key, { phase: "queued", progress: 0, message: undefined, retryable: false });
    this.queue.push(key);
    this.pump();
  }

  /** Removes an entry whatever its phase, cancelling its upload or status checks. */
  remove(key: string): void {
    this.controllers.get(key)?.abort();
    this.controllers.delete(key);
    this.clearTimer(key);
    this.queue = this.queue.filter((k) => k !== key);
    const before = this.entries.length;
    this.entries = this.entries.filter((e) => e.key !== key);
    if (this.entries.length !== before) this.emit();
  }

  /** Drops every staged file (valid or not). */
  clearStaged(): void {
    const before = this.entries.length;
    this.entries = this.entries.filter((e) => !STAGED_PHASES.has(e.phase));
    if (this.entries.length !== before) this.emit();
  }

  start(): void {
    this.disposed = false;
    this.pump();
  }

  /** Cancels uploads and status checks in flight (the component went away). */
  dispose(): void {
    this.disposed = true;
    for (const controller of this.controllers.values()) controller.abort();
    this.controllers.clear();
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private emit(): void {
    for (const listener of this.listeners) listener();
  }

  private get(key: string): UploadEntry | undefined {
    return this.entries.find((e) => e.key === key);
  }

  private patch(key: string, patch: Partial<UploadEntry>): void {
    let changed = false;
    this.entries = this.entries.map((e) => {
      if (e.key !== key) return e;
      changed = true;
      return { ...e, ...patch };
    });
    if (changed) this.emit();
  }

  private clearTimer(key: string): void {
    const timer = this.timers.get(key);
    if (timer !== undefined) clearTimeout(timer);
    this.timers.delete(key);
  }

  private pump(): void {
    while (!this.disposed && this.active < this.concurrency && this.queue.length > 0) {
      const key = this.queue.shift()!;
      if (!this.get(key)) continue;
      this.active += 1;
      void this.upload(key).finally(() => {
        this.active -= 1;
        this.pump();
      });
    }
  }

  private async upload(key: string): Promise<void> {
    const entry = this.get(key);
    if (!entry) return;
    const { file } = entry;
    const controller = new AbortController();
    this.controllers.set(key, controller);
    this.patch(key, { phase: "uploading", progress: 0 });
    try {
      const result = await this.api.uploadDocument(file, {
        signal: controller.signal,
        onProgress: (sent, total) => {
          const progress = total > 0 ? Math.min(100, Math.floor((sent * 100) / total)) : 0;
          if (this.get(key)?.progress !== progress) this.patch(key, { progress });
        },
      });
      if (controller.signal.aborted || !this.get(key)) return;
      const existing = result.job_id === null;
      this.patch(key, { progress: 100, existing });
      if (!existing) this.callbacks.onDocumentChange?.();
      this.settle(key, result.document, 0);
    } catch (error) {
      if (controller.signal.aborted || !this.get(key)) return;
      this.fail(key, error);
    } finally {
      if (this.controllers.get(key) === controller) this.controllers.delete(key);
    }
  }

  private fail(key: string, error: unknown, prefix = ""): void {
    const entry = this.get(key);
    if (!entry) return;
    if (error instanceof ApiError && error.kind === "unauthorized") this.callbacks.onUnauthorized?.();
    const message = `${prefix}${describeError(error)}`;
    const retryable = error instanceof ApiError && RETRYABLE.has(error.kind);
    this.patch(key, { phase: "error", message, retryable });
    this.callbacks.announce?.(`${entry.file.name} failed: ${message}`);
  }

  /** Shows where the document is, and keeps checking while it is pending. */
  private settle(key: string, doc: DocumentView, attempt: number): void {
    const entry = this.get(key);
    if (!entry) return;
    const name = entry.file.name;
    switch (doc.status) {
      case "indexed":
        this.patch(key, { phase: "indexed", document: doc, message: undefined });
        this.callbacks.announce?.(`${name} indexed`);
        this.callbacks.onDocumentChange?.();
        return;
      case "failed": {
        const message = failedSummary(doc);
        this.patch(key, { phase: "failed", document: doc, message });
        this.callbacks.announce?.(`${name} failed: ${doc.error ?? "it could not be indexed"}`);
        this.callbacks.onDocumentChange?.();
        return;
      }
      default:
        this.patch(key, { phase: "indexing", document: doc });
        this.schedulePoll(key, doc.id, attempt, 0);
    }
  }

  private schedulePoll(key: string, documentId: string, attempt: number, errors: number, delay = pollDelay(attempt)): void {
    if (this.disposed) return;
    this.clearTimer(key);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      void this.poll(key, documentId, attempt, errors);
    }, delay);
    this.timers.set(key, timer);
  }

  private async poll(key: string, documentId: string, attempt: number, errors: number): Promise<void> {
    if (this.disposed || this.get(key)?.phase !== "indexing") return;
    try {
      const doc = await this.api.getDocument(documentId);
      if (this.disposed || this.get(key)?.phase !== "indexing") return;
      if (doc.status === "pending") {
        this.patch(key, { document: doc });
        this.schedulePoll(key, documentId, attempt + 1, 0);
      } else {
        this.settle(key, doc, attempt + 1);
      }
    } catch (error) {
      if (this.disposed || this.get(key)?.phase !== "indexing") return;
      const kind = error instanceof ApiError ? error.kind : undefined;
      if (kind === "unauthorized" || kind === "not-found" || errors + 1 >= MAX_POLL_ERRORS) {
        this.fail(key, error, kind === "not-found" || kind === "unauthorized" ? "" : "Could not check the indexing status. ");
        if (kind === "not-found") this.callbacks.onDocumentChange?.();
        return;
      }
      const wait = error instanceof ApiError && error.retryAfterSeconds !== undefined ? error.retryAfterSeconds * 1000 : 3000;
      this.schedulePoll(key, documentId, attempt + 1, errors + 1, Math.max(wait, pollDelay(attempt + 1)));
    }
  }
}
