import { ApiError, errorFromResponse, offlineError } from "./errors";
import { SseParser } from "./sse";
import type {
  ChatJob,
  Conversation,
  ConversationSummary,
  DocumentView,
  FeedbackRating,
  Session,
  SubmittedChat,
  UploadResult,
} from "./types";

/** `VITE_API_BASE_URL` at build time, else the same origin's `/api`. */
export const API_BASE_URL: string = (import.meta.env.VITE_API_BASE_URL as string | undefined)?.replace(/\/$/, "") ?? "/api";

export interface FollowHandlers {
  /** The whole answer text so far (not a delta); "" when a retried attempt starts over. */
  onPartial?: (text: string) => void;
  onStatus?: (status: ChatJob["status"], attempts: number, error: string | null) => void;
  signal?: AbortSignal;
}

export interface UploadHandlers {
  /** Bytes sent so far and the total, as the browser reports them. */
  onProgress?: (sent: number, total: number) => void;
  signal?: AbortSignal;
}

/**
 * The FlowChat API as the web app uses it. Every failure is an `ApiError`
 * (see errors.ts), so components show one kind of message.
 */
export class ApiClient {
  constructor(
    private readonly baseUrl: string = API_BASE_URL,
    private readonly getToken: () => string | null = () => null,
    private readonly fetchImpl: typeof fetch = (...args) => fetch(...args),
    private readonly createXhr: () => XMLHttpRequest = () => new XMLHttpRequest(),
  ) {}

  private headers(json: boolean): Headers {
    const headers = new Headers({ Accept: "application/json" });
    if (json) headers.set("Content-Type", "application/json");
    const token = this.getToken();
    if (token) headers.set("Authorization", `Bearer ${token}`);
    return headers;
  }

  private async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.baseUrl}${path}`, {
        method,
        headers: this.headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (cause) {
      if (signal?.aborted) throw cause;
      throw offlineError(cause);
    }
    const text = await response.text();
    if (!response.ok) throw errorFromResponse(response.status, response.headers, text);
    if (response.status === 204 || text === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError({ kind: "server", status: response.status, message: "The server sent an unreadable response." });
    }
  }

  /** `PUT /api/chat/{job_id}/feedback`: records (or replaces) the reader's feedback on an answer. */
  putFeedback(jobId: string, rating: FeedbackRating, comment?: string): Promise<void> {
    const body = comment && comment.trim() ? { rating, comment } : { rating };
    return this.request("PUT", `/chat/${encodeURIComponent(jobId)}/feedback`, body);
  }

  createSession(nickname: string): Promise<Session> {
    return this.request("POST", "/session", { nickname });
  }

  sendMessage(message: string, conversationId?: string): Promise<SubmittedChat> {
    return this.request("POST", "/chat", conversationId ? { message, conversation_id: conversationId } : { message });
  }

  getJob(jobId: string, waitSeconds = 0, signal?: AbortSignal): Promise<ChatJob> {
    const query = waitSeconds > 0 ? `?wait=${waitSeconds}` : "";
    return this.request("GET", `/chat/${encodeURIComponent(jobId)}${query}`, undefined, signal);
  }

  listConversations(): Promise<ConversationSummary[]> {
    return this.request<{ conversations: ConversationSummary[] }>("GET", "/conversations").then((r) => r.conversations);
  }

  getConversation(id: string): Promise<Conversation> {
    return this.request("GET", `/conversations/${encodeURIComponent(id)}`);
  }

  deleteConversation(id: string): Promise<void> {
    return this.request("DELETE", `/conversations/${encodeURIComponent(id)}`);
  }

  listDocuments(): Promise<DocumentView[]> {
    return this.request<{ documents: DocumentView[] }>("GET", "/documents").then((r) => r.documents);
  }

  getDocument(id: string): Promise<DocumentView> {
    return this.request("GET", `/documents/${encodeURIComponent(id)}`);
  }

  deleteDocument(id: string): Promise<void> {
    return this.request<unknown>("DELETE", `/documents/${encodeURIComponent(id)}`).then(() => undefined);
  }

  /**
   * Uploads one file as multipart `file`. Uses XMLHttpRequest because
   * `fetch` reports no upload progress.
   */
  uploadDocument(file: File, handlers: UploadHandlers = {}): Promise<UploadResult> {
    return new Promise((resolve, reject) => {
      const xhr = this.createXhr();
      xhr.open("POST", `${this.baseUrl}/documents`);
      xhr.setRequestHeader("Accept", "application/json");
      const token = this.getToken();
      if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) handlers.onProgress?.(event.loaded, event.total);
      };
      xhr.onload = () => {
        const headers = { get: (name: string) => xhr.getResponseHeader(name) };
        if (xhr.status >= 200 && xhr.status < 300) {
          try {
            resolve(JSON.parse(xhr.responseText) as UploadResult);
          } catch {
            reject(new ApiError({ kind: "server", status: xhr.status, message: "The server sent an unreadable response." }));
          }
        } else {
          reject(errorFromResponse(xhr.status, headers, xhr.responseText));
        }
      };
      xhr.onerror = () => reject(offlineError(new Error("network error")));
      xhr.onabort = () => reject(new DOMException("Upload cancelled", "AbortError"));
      handlers.signal?.addEventListener("abort", () => xhr.abort(), { once: true });
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
  }

  /**
   * Follows a chat job until it succeeds or fails, reporting partial text as
   * it streams. Reads the SSE stream with `fetch` and reconnects when a
   * connection ends early (the server closes each after 25 s); falls back to
   * long-polling `?wait=` when streaming is not possible.
   */
  async followJob(jobId: string, handlers: FollowHandlers = {}): Promise<ChatJob> {
    let streamFailures = 0;
    while (!handlers.signal?.aborted) {
      if (streamFailures < 2) {
        try {
          const final = await this.streamOnce(jobId, handlers);
          if (final) return final;
          continue; // the connection ended before the answer: reconnect
        } catch (error) {
          if (handlers.signal?.aborted) throw error;
          // Errors the server stated (404, 401, 429) are final.
          if (error instanceof ApiError && error.kind !== "offline" && error.kind !== "server" && error.kind !== "unavailable") {
            throw error;
          }
          streamFailures += 1;
        }
      }
      return this.pollJob(jobId, handlers);
    }
    throw new DOMException("Aborted", "AbortError");
  }

  private async streamOnce(jobId: string, handlers: FollowHandlers): Promise<ChatJob | undefined> {
    const headers = this.headers(false);
    headers.set("Accept", "text/event-stream");
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.baseUrl}/chat/${encodeURIComponent(jobId)}/events`, {
        headers,
        signal: handlers.signal,
      });
    } catch (cause) {
      if (handlers.signal?.aborted) throw cause;
      throw offlineError(cause);
    }
    if (!response.ok) throw errorFromResponse(response.status, response.headers, await response.text());
    if (!response.body) throw new ApiError({ kind: "server", status: 0, message: "Streaming is not supported here." });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return undefined;
      for (const event of parser.push(value)) {
        const payload = safeJson(event.data);
        switch (event.event) {
          case "status":
            if (payload?.status) handlers.onStatus?.(payload.status, payload.attempts ?? 0, payload.error ?? null);
            break;
          case "partial":
            handlers.onPartial?.(typeof payload?.text === "string" ? payload.text : "");
            break;
          case "answer":
          case "failed":
            await reader.cancel().catch(() => undefined);
            if (!payload?.job_id || !payload.status) {
              throw new ApiError({ kind: "server", status: 200, message: "The server sent an unreadable answer." });
            }
            return payload as ChatJob;
          case "gone":
            await reader.cancel().catch(() => undefined);
            throw new ApiError({ kind: "not-found", status: 404, message: "The answer expired before it could be read." });
          default:
            break; // `unavailable` and unknown events: keep reading, reconnect when the stream ends
        }
      }
    }
  }

  private async pollJob(jobId: string, handlers: FollowHandlers): Promise<ChatJob> {
    let lastPartial: string | undefined;
    let lastStatus: string | undefined;
    for (;;) {
      const job = await this.getJob(jobId, 20, handlers.signal);
      if (job.status !== lastStatus) {
        lastStatus = job.status;
        handlers.onStatus?.(job.status, job.attempts, job.error ?? null);
      }
      if (job.status === "succeeded" || job.status === "failed") return job;
      const partial = job.partial ?? "";
      if (partial !== lastPartial) {
        lastPartial = partial;
        handlers.onPartial?.(partial);
      }
    }
  }
}

/** The fields the job stream's events carry; any of them may be missing from a malformed event. */
interface StreamPayload extends Partial<ChatJob> {
  text?: unknown;
}

function safeJson(text: string): StreamPayload | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === "object" ? (value as StreamPayload) : undefined;
  } catch {
    return undefined;
  }
}
