/**
 * The one fake of the network for tests: the FlowChat HTTP API (docs/api.md)
 * in memory, reached through a `fetch` and an `XMLHttpRequest` like the
 * browser's. The real ApiClient runs on top of it (`network.client()`);
 * nothing of the app itself is replaced.
 *
 * It keeps what the server keeps — the sessions it issued, conversations,
 * chat jobs, documents — and answers from that state. The test plays the
 * drain and the network's timing: it writes to a job's open event streams
 * (`partial`, `answer`, `fail`), changes a document's status, and reports an
 * upload's progress before finishing it. What the state alone cannot produce
 * (a 429, a 500, a dropped connection) is scripted per route with `on` and
 * `once`. It does not keep sessions' data apart, and documents are listed in
 * the order they were added (the server sorts them by name).
 */
import { act } from "@testing-library/react";
import { vi } from "vitest";
import { ApiClient } from "../api/client";
import type { ChatJob, Citation, Conversation, DocumentView, Message, Problem, Session } from "../api/types";

/** A request as the server saw it; `path` is the URL's path and query (`/api/chat/j1?wait=20`). */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: Headers;
  /** The JSON body parsed, or the multipart form of an upload. */
  body: unknown;
}

/** A scripted answer: a response, or a function of the request; `undefined` lets the API answer. */
export type Reply = Response | ((request: RecordedRequest) => Response | Promise<Response> | undefined);

interface Script {
  method: string;
  path: string | RegExp;
  reply: Reply;
  once: boolean;
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": status >= 400 ? "application/problem+json" : "application/json", ...headers },
  });
}

/** An RFC 9457 problem response, as the API sends every error. */
export function problem(status: number, fields: Partial<Problem> = {}, headers: Record<string, string> = {}): Response {
  return json(status, { type: "about:blank", title: `HTTP ${status}`, status, ...fields }, headers);
}

/** What `fetch` does when no server answers. */
export function connectionLost(): Promise<Response> {
  return Promise.reject(new TypeError("Failed to fetch"));
}

const T0 = Date.parse("2026-11-26T10:00:00.000Z");

export function citation(index: number, source: string, extra: Partial<Citation> = {}): Citation {
  return {
    index,
    document_id: `doc-${index}`,
    source,
    chunk: index,
    score: 1,
    excerpt: `Excerpt ${index} from ${source}.`,
    ...extra,
  };
}

/** A document view with plausible defaults: private, uploaded, indexed. */
function documentView(fields: Partial<DocumentView> & { id: string; name: string }): DocumentView {
  return {
    scope: "private",
    origin: "upload",
    status: "indexed",
    chunks: 1,
    pages: null,
    size_bytes: 1024,
    error: null,
    updated_at: "2026-01-01T00:00:00Z",
    ...fields,
  };
}

/** One open `/events` connection; the network writes the job's events to it. */
export class FakeStream {
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private readonly encoder = new TextEncoder();
  closed = false;
  readonly body: ReadableStream<Uint8Array>;

  constructor(signal?: AbortSignal | null) {
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller;
      },
      cancel: () => {
        this.closed = true;
      },
    });
    signal?.addEventListener("abort", () => {
      if (this.closed) return;
      this.closed = true;
      this.controller.error(new DOMException("Aborted", "AbortError"));
    });
  }

  send(event: string, data: unknown): void {
    if (this.closed) return;
    this.controller.enqueue(this.encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
  }

  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.controller.close();
  }
}

/**
 * An upload in flight: just enough XMLHttpRequest for ApiClient.uploadDocument.
 * It waits for the test: `progress` reports bytes sent, `finish` lets the
 * network answer it, `fail` drops the connection.
 */
export class FakeUpload {
  method = "";
  url = "";
  requestHeaders: Record<string, string> = {};
  body: FormData | null = null;
  status = 0;
  responseText = "";
  aborted = false;
  done = false;
  upload: { onprogress: ((event: ProgressEvent) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  private response: Response | null = null;
  private request: RecordedRequest | null = null;

  constructor(private readonly network: FakeNetwork) {}

  open(method: string, url: string): void {
    this.method = method;
    this.url = url;
  }

  setRequestHeader(name: string, value: string): void {
    this.requestHeaders[name.toLowerCase()] = value;
  }

  getResponseHeader(name: string): string | null {
    return this.response?.headers.get(name) ?? null;
  }

  send(body: FormData): void {
    this.body = body;
    this.request = this.network.record(this.method, this.url, new Headers(this.requestHeaders), body);
    this.network.uploads.push(this);
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

  /** The upload arrives: the network answers it (scripted replies first, then the API). */
  async finish(): Promise<void> {
    if (!this.request) throw new Error("the upload was not sent");
    let response: Response;
    try {
      response = await this.network.respond(this.request);
    } catch {
      return this.fail();
    }
    this.response = response;
    this.status = response.status;
    this.responseText = await response.text();
    this.done = true;
    await act(async () => {
      this.onload?.();
    });
  }

  /** The connection drops before an answer. */
  async fail(): Promise<void> {
    this.done = true;
    await act(async () => {
      this.onerror?.();
    });
  }
}

/** The FlowChat API in memory; see the top of this file. */
export class FakeNetwork {
  /** Every request, in the order sent (uploads when sent, not when finished). */
  readonly requests: RecordedRequest[] = [];
  /** Every session issued, by `POST /api/session` or `signIn`. */
  readonly sessions: Session[] = [];
  conversations: Conversation[] = [];
  readonly jobs = new Map<string, ChatJob>();
  /** Open event streams per job, in the order they were opened. */
  readonly streams = new Map<string, FakeStream[]>();
  documents: DocumentView[] = [];
  /** Uploads sent, in order; each waits for `finish` or `fail`. */
  readonly uploads: FakeUpload[] = [];
  /** When true, no request reaches the server (as with the network down). */
  offline = false;
  private readonly expired = new Set<string>();
  /** What each document's file held: the same bytes uploaded again are the same document. */
  private readonly contents = new Map<string, string>();
  private scripts: Script[] = [];
  private clock = T0;
  private nextId = 1;

  readonly fetch: typeof fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const body = typeof init?.body === "string" ? JSON.parse(init.body) : undefined;
    const request = this.record(init?.method ?? "GET", url, new Headers(init?.headers), body);
    if (init?.signal?.aborted) throw new DOMException("Aborted", "AbortError");
    return this.respond(request, init?.signal);
  };

  /** What the ApiClient creates to upload a file. */
  readonly createXhr = (): XMLHttpRequest => new FakeUpload(this) as unknown as XMLHttpRequest;

  /** The real client, with a session token (by default the last session, signing one in if none). */
  client(token: string | null = (this.sessions.at(-1) ?? this.signIn()).token): ApiClient {
    return new ApiClient("/api", () => token, this.fetch, this.createXhr);
  }

  /** Makes `fetch` and `XMLHttpRequest` this network for code that builds its own client (undo with `vi.unstubAllGlobals`). */
  install(): void {
    const network = this;
    vi.stubGlobal("fetch", this.fetch);
    vi.stubGlobal(
      "XMLHttpRequest",
      class extends FakeUpload {
        constructor() {
          super(network);
        }
      },
    );
  }

  /** A new session, as `POST /api/session` makes one. */
  signIn(nickname = "Ana"): Session {
    const n = this.nextId++;
    const session: Session = {
      token: `token-${n}`,
      session_id: `session-${n}`,
      nickname,
      expires_at: "2099-01-01T00:00:00.000Z",
    };
    this.sessions.push(session);
    return session;
  }

  /** Every session issued so far expires: their tokens are answered 401 from now on. */
  expireSessions(): void {
    for (const session of this.sessions) this.expired.add(session.token);
  }

  /** Answers matching requests with `reply` from now on (the latest script first). */
  on(method: string, path: string | RegExp, reply: Reply): this {
    this.scripts.unshift({ method, path, reply, once: false });
    return this;
  }

  /** Answers the next matching request with `reply`. */
  once(method: string, path: string | RegExp, reply: Reply): this {
    this.scripts.unshift({ method, path, reply, once: true });
    return this;
  }

  count(method: string, path: string | RegExp): number {
    return this.requests.filter((r) => r.method === method && matches(path, r.path)).length;
  }

  private now(): string {
    this.clock += 1000;
    return new Date(this.clock).toISOString();
  }

  // Conversations and chat jobs

  addConversation(title: string, messages: Array<Partial<Message> & Pick<Message, "role" | "content">> = []): Conversation {
    const at = this.now();
    const conversation: Conversation = {
      id: `conv-${this.nextId++}`,
      title,
      created_at: at,
      updated_at: at,
      messages: messages.map((m) => ({ citations: [], job_id: null, created_at: at, ...m })),
    };
    this.conversations.push(conversation);
    return conversation;
  }

  /** The latest open stream for `jobId`, if any. */
  stream(jobId: string): FakeStream | undefined {
    const list = this.streams.get(jobId);
    return list?.[list.length - 1];
  }

  /** The job's answer so far, sent to its open streams. */
  partial(jobId: string, text: string): void {
    const job = this.jobs.get(jobId);
    if (job) Object.assign(job, { status: "running", partial: text });
    for (const stream of this.streams.get(jobId) ?? []) stream.send("partial", { text });
  }

  /** Ends job `jobId` with an answer (stored in its conversation, as the server does). */
  answer(jobId: string, answer: string, citations: Citation[] = [], mode: "generative" | "extractive" = "generative"): ChatJob {
    const job = this.job(jobId);
    Object.assign(job, { status: "succeeded", answer, citations, mode, partial: null, updated_at: this.now() });
    const conversation = this.conversations.find((c) => c.id === job.conversation_id);
    if (conversation) {
      conversation.messages.push({ role: "assistant", content: answer, citations, job_id: jobId, created_at: job.updated_at });
      conversation.updated_at = job.updated_at;
    }
    for (const stream of this.streams.get(jobId) ?? []) {
      stream.send("answer", job);
      stream.end();
    }
    return job;
  }

  fail(jobId: string, error: string): ChatJob {
    const job = this.job(jobId);
    Object.assign(job, { status: "failed", error, updated_at: this.now() });
    for (const stream of this.streams.get(jobId) ?? []) {
      stream.send("failed", job);
      stream.end();
    }
    return job;
  }

  // Documents

  /** A document already in the catalog; `content` is its file's text, for recognising it when uploaded again. */
  addDocument(fields: Partial<DocumentView> & { name: string }, content?: string): DocumentView {
    const doc = documentView({
      id: `doc-${this.nextId++}`,
      ...(content === undefined ? {} : { size_bytes: new TextEncoder().encode(content).length }),
      ...fields,
    });
    this.documents.push(doc);
    if (content !== undefined) this.contents.set(doc.id, content);
    return doc;
  }

  /** The document as the drain leaves it (indexed, failed, …). */
  updateDocument(id: string, fields: Partial<DocumentView>): void {
    this.documents = this.documents.map((d) => (d.id === id ? { ...d, ...fields } : d));
  }

  documentNamed(name: string): DocumentView {
    const doc = this.documents.find((d) => d.name === name);
    if (!doc) throw new Error(`no document ${name}`);
    return doc;
  }

  /** The upload sent last. */
  lastUpload(): FakeUpload {
    const upload = this.uploads.at(-1);
    if (!upload) throw new Error("no upload was sent");
    return upload;
  }

  // The server

  /** @internal Keeps a request in `requests`; FakeUpload sends through here. */
  record(method: string, url: string, headers: Headers, body: unknown): RecordedRequest {
    const parsed = new URL(url, "http://localhost");
    const request = { method: method.toUpperCase(), path: parsed.pathname + parsed.search, headers, body };
    this.requests.push(request);
    return request;
  }

  /** @internal The response to a recorded request: a scripted reply if one matches, else the API's. */
  async respond(request: RecordedRequest, signal?: AbortSignal | null): Promise<Response> {
    if (this.offline) return connectionLost();
    const script = this.scripts.find((s) => s.method === request.method && matches(s.path, request.path));
    if (script) {
      if (script.once) this.scripts.splice(this.scripts.indexOf(script), 1);
      const response = typeof script.reply === "function" ? script.reply(request) : script.reply.clone();
      if (response) return response;
    }
    return this.api(request, signal);
  }

  private job(jobId: string): ChatJob {
    const job = this.jobs.get(jobId);
    if (!job) throw new Error(`no job ${jobId}`);
    return job;
  }

  /** The session a request's token belongs to: undefined without one, "refused" for one this server did not issue or that expired. */
  private sessionOf(request: RecordedRequest): Session | "refused" | undefined {
    const header = request.headers.get("authorization");
    if (!header) return undefined;
    const token = header.replace(/^Bearer /, "");
    const session = this.sessions.find((s) => s.token === token);
    return session && !this.expired.has(token) ? session : "refused";
  }

  private async api(request: RecordedRequest, signal?: AbortSignal | null): Promise<Response> {
    const { method, path, body } = request;
    if (method === "POST" && path === "/api/session") {
      const { nickname } = body as { nickname: string };
      return json(201, this.signIn(nickname.trim()));
    }

    // Reading documents needs no session; everything else does, and a bad token is refused everywhere.
    const session = this.sessionOf(request);
    const sessionOptional = method === "GET" && /^\/api\/documents(\/|$)/.test(path);
    if (session === "refused" || (!session && !sessionOptional)) {
      return problem(401, { detail: "The session token is missing, forged or expired." }, { "WWW-Authenticate": "Bearer" });
    }

    let match: RegExpExecArray | null;
    if (method === "GET" && path === "/api/conversations") {
      const list = [...this.conversations]
        .sort((a, b) => b.updated_at.localeCompare(a.updated_at))
        .map(({ id, title, created_at, updated_at, messages }) => ({ id, title, created_at, updated_at, message_count: messages.length }));
      return json(200, { conversations: list });
    }
    if ((match = /^\/api\/conversations\/([^/?]+)$/.exec(path))) {
      const index = this.conversations.findIndex((c) => c.id === decodeURIComponent(match![1]));
      if (index === -1) return notFound();
      if (method === "DELETE") {
        this.conversations.splice(index, 1);
        return new Response(null, { status: 204 });
      }
      return json(200, structuredClone(this.conversations[index]));
    }
    if (method === "POST" && path === "/api/chat") return this.submitChat(body as { message: string; conversation_id?: string });
    if (method === "GET" && (match = /^\/api\/chat\/([^/?]+)\/events$/.exec(path))) return this.openStream(match[1], signal);
    if (method === "PUT" && (match = /^\/api\/chat\/([^/?]+)\/feedback$/.exec(path))) {
      return this.recordFeedback(decodeURIComponent(match[1]), body as { rating: "up" | "down"; comment?: string });
    }
    if (method === "GET" && (match = /^\/api\/chat\/([^/?]+)(\?|$)/.exec(path))) {
      const job = this.jobs.get(decodeURIComponent(match[1]));
      return job ? json(200, job) : notFound();
    }

    if (method === "GET" && path === "/api/documents") return json(200, { documents: [...this.documents] });
    if (method === "POST" && path === "/api/documents") return this.receiveUpload(body as FormData);
    if ((match = /^\/api\/documents\/([^/?]+)$/.exec(path))) {
      const id = decodeURIComponent(match[1]);
      const doc = this.documents.find((d) => d.id === id);
      if (!doc) return notFound();
      if (method === "GET") return json(200, doc);
      if (method === "DELETE") {
        if (doc.scope === "shared") return problem(403, { detail: "Shared documents need the admin token." });
        this.documents = this.documents.filter((d) => d.id !== id);
        this.contents.delete(id);
        return json(202, { document_id: id, job_id: `job-${this.nextId++}`, status: "deleting" });
      }
    }
    return notFound(`no route ${method} ${path}`);
  }

  private submitChat({ message, conversation_id }: { message: string; conversation_id?: string }): Response {
    let conversation = this.conversations.find((c) => c.id === conversation_id);
    if (conversation_id && !conversation) return notFound();
    if (!conversation) conversation = this.addConversation(message.split(/\s+/).join(" ").slice(0, 60));
    const jobId = `job-${this.nextId++}`;
    const at = this.now();
    conversation.messages.push({ role: "user", content: message, citations: [], job_id: jobId, created_at: at });
    conversation.updated_at = at;
    this.jobs.set(jobId, {
      job_id: jobId,
      kind: "chat",
      status: "queued",
      conversation_id: conversation.id,
      attempts: 0,
      created_at: at,
      updated_at: at,
    });
    return json(202, { job_id: jobId, conversation_id: conversation.id, status: "queued" }, { Location: `/api/chat/${jobId}` });
  }

  /** `PUT /api/chat/{id}/feedback`: kept on the answer, as the server shows it in the conversation. */
  private recordFeedback(jobId: string, { rating, comment }: { rating: "up" | "down"; comment?: string }): Response {
    if (rating !== "up" && rating !== "down") {
      return problem(400, { detail: 'rating must be "up" or "down"', field: "rating", rule: "value" });
    }
    const answer = this.conversations
      .flatMap((c) => c.messages)
      .find((m) => m.role === "assistant" && m.job_id === jobId);
    if (!answer) return notFound("no such answer");
    answer.feedback = comment?.trim() ? { rating, comment: comment.trim() } : { rating };
    return new Response(null, { status: 204 });
  }

  /** `/events`: the job's state at once, then whatever the test writes, held open until the job ends. */
  private openStream(jobId: string, signal?: AbortSignal | null): Response {
    const job = this.jobs.get(decodeURIComponent(jobId));
    if (!job) return notFound();
    const stream = new FakeStream(signal);
    this.streams.set(job.job_id, [...(this.streams.get(job.job_id) ?? []), stream]);
    stream.send("status", { status: job.status, attempts: job.attempts, error: job.error ?? null });
    if (job.status === "succeeded") {
      stream.send("answer", job);
      stream.end();
    } else if (job.status === "failed") {
      stream.send("failed", job);
      stream.end();
    } else if (job.partial) {
      stream.send("partial", { text: job.partial });
    }
    return new Response(stream.body, { status: 200, headers: { "Content-Type": "text/event-stream" } });
  }

  /** `POST /api/documents`: the same bytes again are the same document; new ones wait to be indexed. */
  private async receiveUpload(form: FormData): Promise<Response> {
    const file = form.get("file") as File;
    const content = await file.text();
    const known = this.documents.find((d) => this.contents.get(d.id) === content && d.status !== "failed");
    if (known) return json(200, { document_id: known.id, job_id: null, status: known.status, document: known });

    const existing = this.documents.find((d) => this.contents.get(d.id) === content);
    const fields = { name: file.name, status: "pending" as const, chunks: 0, error: null, updated_at: this.now() };
    let doc: DocumentView;
    if (existing) {
      this.updateDocument(existing.id, fields);
      doc = this.documents.find((d) => d.id === existing.id)!;
    } else {
      doc = this.addDocument({ ...fields, size_bytes: file.size }, content);
    }
    const jobId = `job-${this.nextId++}`;
    return json(202, { document_id: doc.id, job_id: jobId, status: "pending", document: doc }, { Location: `/api/documents/${doc.id}` });
  }
}

function matches(pattern: string | RegExp, path: string): boolean {
  return typeof pattern === "string" ? pattern === path : pattern.test(path);
}

function notFound(detail = "Not found."): Response {
  return problem(404, { detail });
}
