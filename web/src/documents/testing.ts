/**
 * Test doubles for the network boundary only: a fake `fetch` backed by an
 * in-memory document store, and a fake XMLHttpRequest for uploads. The real
 * ApiClient runs on top of them.
 */
import { act } from "@testing-library/react";
import { ApiClient } from "../api/client";
import type { DocumentView, Problem } from "../api/types";

export function makeDoc(partial: Partial<DocumentView> & { id: string; name: string }): DocumentView {
  return {
    scope: "private",
    origin: "upload",
    status: "indexed",
    chunks: 1,
    pages: null,
    size_bytes: 1024,
    error: null,
    updated_at: "2026-01-01T00:00:00Z",
    ...partial,
  };
}

export function problem(status: number, extra: Partial<Problem> = {}): Problem {
  return { type: "about:blank", title: `HTTP ${status}`, status, ...extra };
}

type Responder = () => Response;

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": status >= 400 ? "application/problem+json" : "application/json", ...headers },
  });
}

/** The documents API in memory, as `fetch` sees it. */
export class FakeServer {
  documents: DocumentView[] = [];
  requests: { method: string; path: string }[] = [];
  /** Responses used (once each, in order) instead of the normal answer for GET /api/documents. */
  listOverrides: Responder[] = [];
  /** Responses used (once each) for DELETE instead of deleting. */
  deleteOverrides: Responder[] = [];

  readonly fetch: typeof fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const method = (init?.method ?? "GET").toUpperCase();
    const path = url.replace(/^https?:\/\/[^/]+/, "");
    this.requests.push({ method, path });
    if (method === "GET" && path === "/api/documents") {
      const override = this.listOverrides.shift();
      if (override) return override();
      return jsonResponse(200, { documents: [...this.documents] });
    }
    const match = /^\/api\/documents\/([^/?]+)$/.exec(path);
    if (match) {
      const id = decodeURIComponent(match[1]);
      const doc = this.documents.find((d) => d.id === id);
      if (method === "GET") return doc ? jsonResponse(200, doc) : jsonResponse(404, problem(404));
      if (method === "DELETE") {
        const override = this.deleteOverrides.shift();
        if (override) return override();
        if (!doc) return jsonResponse(404, problem(404));
        this.documents = this.documents.filter((d) => d.id !== id);
        return jsonResponse(202, { document_id: id, job_id: "job-delete", status: "deleting" });
      }
    }
    return jsonResponse(404, problem(404));
  };

  readonly api = new ApiClient("/api", () => "tok", this.fetch);

  count(method: string, path: string): number {
    return this.requests.filter((r) => r.method === method && r.path === path).length;
  }

  setStatus(id: string, patch: Partial<DocumentView>): void {
    this.documents = this.documents.map((d) => (d.id === id ? { ...d, ...patch } : d));
  }
}

/** Just enough XMLHttpRequest for ApiClient.uploadDocument, driven by the test. */
export class FakeXhr {
  static instances: FakeXhr[] = [];
  static original: typeof XMLHttpRequest | undefined;

  static install(): void {
    FakeXhr.instances = [];
    FakeXhr.original = globalThis.XMLHttpRequest;
    globalThis.XMLHttpRequest = FakeXhr as unknown as typeof XMLHttpRequest;
  }

  static uninstall(): void {
    if (FakeXhr.original) globalThis.XMLHttpRequest = FakeXhr.original;
    FakeXhr.instances = [];
  }

  static last(): FakeXhr {
    const xhr = FakeXhr.instances[FakeXhr.instances.length - 1];
    if (!xhr) throw new Error("no upload was sent");
    return xhr;
  }

  method = "";
  url = "";
  requestHeaders: Record<string, string> = {};
  body: FormData | null = null;
  status = 0;
  responseText = "";
  aborted = false;
  done = false;
  private responseHeaders: Record<string, string> = {};
  upload: { onprogress: ((event: ProgressEvent) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;

  open(method: string, url: string): void {
    this.method = method;
    this.url = url;
  }

  setRequestHeader(name: string, value: string): void {
    this.requestHeaders[name.toLowerCase()] = value;
  }

  getResponseHeader(name: string): string | null {
    return this.responseHeaders[name.toLowerCase()] ?? null;
  }

  send(body: FormData): void {
    this.body = body;
    FakeXhr.instances.push(this);
  }

  abort(): void {
    this.aborted = true;
    this.done = true;
    this.onabort?.();
  }

  /** The file in the multipart body. */
  get file(): File {
    return this.body?.get("file") as File;
  }

  progress(loaded: number, total: number): void {
    act(() => {
      this.upload.onprogress?.({ lengthComputable: true, loaded, total } as ProgressEvent);
    });
  }

  async respond(status: number, body: unknown, headers: Record<string, string> = {}): Promise<void> {
    this.status = status;
    this.responseText = JSON.stringify(body);
    this.responseHeaders = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
    this.done = true;
    await act(async () => {
      this.onload?.();
    });
  }

  async fail(): Promise<void> {
    this.done = true;
    await act(async () => {
      this.onerror?.();
    });
  }
}
