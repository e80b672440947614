/**
 * A fake FlowChat HTTP API for tests: a `fetch` function that answers like
 * the server (docs/api.md), with conversations in memory and chat job event
 * streams the test drives by hand. Used only by tests, at the HTTP boundary
 * (`new ApiClient(base, getToken, server.fetch)`).
 */
import { ApiClient } from "../api/client";
import type { ChatJob, Citation, Conversation, Message } from "../api/types";

export const BASE = "http://test/api";

export interface RecordedRequest {
  method: string;
  path: string;
  body?: unknown;
}

/** Answers a request; `undefined` lets the normal route answer it. */
type Handler = (request: RecordedRequest) => Response | Promise<Response> | undefined;

interface Override {
  method: string;
  path: RegExp;
  handler: Handler;
  once: boolean;
}

/** One open `/events` connection the test writes to. */
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

export function problem(status: number, detail: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ type: "urn:flowchat:problem:x", title: detail, status, detail, request_id: "req-1" }), {
    status,
    headers: { "Content-Type": "application/problem+json", ...headers },
  });
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
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

export class FakeServer {
  conversations: Conversation[] = [];
  jobs = new Map<string, ChatJob>();
  requests: RecordedRequest[] = [];
  /** Open event streams per job, in the order they were opened. */
  streams = new Map<string, FakeStream[]>();
  private overrides: Override[] = [];
  private clock = T0;
  private nextId = 1;

  readonly fetch: typeof fetch = (input, init) => this.handle(input, init);

  client(): ApiClient {
    return new ApiClient(BASE, () => "token", this.fetch);
  }

  now(): string {
    this.clock += 1000;
    return new Date(this.clock).toISOString();
  }

  /** Answers the next matching request(s) with `handler` instead. */
  on(method: string, path: RegExp, handler: Handler, once = true): void {
    this.overrides.push({ method, path, handler, once });
  }

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

  /** Ends job `jobId` with an answer (stored in its conversation, as the server does). */
  answer(jobId: string, answer: string, citations: Citation[] = [], mode: "generative" | "extractive" = "generative"): ChatJob {
    const job = this.jobs.get(jobId);
    if (!job) throw new Error(`no job ${jobId}`);
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
    const job = this.jobs.get(jobId);
    if (!job) throw new Error(`no job ${jobId}`);
    Object.assign(job, { status: "failed", error, updated_at: this.now() });
    for (const stream of this.streams.get(jobId) ?? []) {
      stream.send("failed", job);
      stream.end();
    }
    return job;
  }

  partial(jobId: string, text: string): void {
    const job = this.jobs.get(jobId);
    if (job) Object.assign(job, { status: "running", partial: text });
    for (const stream of this.streams.get(jobId) ?? []) stream.send("partial", { text });
  }

  count(method: string, path: RegExp): number {
    return this.requests.filter((r) => r.method === method && path.test(r.path)).length;
  }

  private async handle(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    const method = (init?.method ?? "GET").toUpperCase();
    const path = url.pathname.replace(/^\/api/, "") + url.search;
    const body = typeof init?.body === "string" ? JSON.parse(init.body) : undefined;
    const request: RecordedRequest = { method, path, body };
    this.requests.push(request);
    if (init?.signal?.aborted) throw new DOMException("Aborted", "AbortError");

    const override = this.overrides.find((o) => o.method === method && o.path.test(path));
    if (override) {
      if (override.once) this.overrides.splice(this.overrides.indexOf(override), 1);
      const response = override.handler(request);
      if (response) return response;
    }

    let match: RegExpExecArray | null;
    if (method === "GET" && path === "/conversations") {
      const list = [...this.conversations]
        .sort((a, b) => b.updated_at.localeCompare(a.updated_at))
        .map(({ id, title, created_at, updated_at, messages }) => ({
          id,
          title,
          created_at,
          updated_at,
          message_count: messages.length,
        }));
      return json({ conversations: list });
    }
    if ((match = /^\/conversations\/([^/?]+)$/.exec(path))) {
      const index = this.conversations.findIndex((c) => c.id === decodeURIComponent(match![1]));
      if (index === -1) return problem(404, "not found");
      if (method === "DELETE") {
        this.conversations.splice(index, 1);
        return new Response(null, { status: 204 });
      }
      return json(structuredClone(this.conversations[index]));
    }
    if (method === "POST" && path === "/chat") {
      const { message, conversation_id } = body as { message: string; conversation_id?: string };
      let conversation = this.conversations.find((c) => c.id === conversation_id);
      if (conversation_id && !conversation) return problem(404, "not found");
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
      return json({ job_id: jobId, conversation_id: conversation.id, status: "queued" }, 202);
    }
    if (method === "GET" && (match = /^\/chat\/([^/?]+)\/events$/.exec(path))) {
      const job = this.jobs.get(match[1]);
      if (!job) return problem(404, "not found");
      const stream = new FakeStream(init?.signal);
      const list = this.streams.get(job.job_id) ?? [];
      list.push(stream);
      this.streams.set(job.job_id, list);
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
    if (method === "GET" && (match = /^\/chat\/([^/?]+)/.exec(path))) {
      const job = this.jobs.get(match[1]);
      return job ? json(job) : problem(404, "not found");
    }
    return problem(404, `no route ${method} ${path}`);
  }
}
