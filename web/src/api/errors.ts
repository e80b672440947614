import type { Problem } from "./types";

/** Why a call failed, in the terms the UI explains to people. */
export type ApiErrorKind =
  | "offline" // no response at all (network down, server not running)
  | "rate-limited" // 429, `retryAfterSeconds` says how long to wait
  | "unauthorized" // 401: the session is gone or expired
  | "not-found" // 404
  | "validation" // 400 with a field and rule
  | "too-large" // 413
  | "unsupported-type" // 415
  | "unavailable" // 503
  | "server"; // any other 5xx or an unreadable response

export class ApiError extends Error {
  readonly kind: ApiErrorKind;
  readonly status: number;
  readonly problem?: Problem;
  readonly requestId?: string;
  readonly retryAfterSeconds?: number;

  constructor(init: {
    kind: ApiErrorKind;
    status: number;
    message: string;
    problem?: Problem;
    requestId?: string;
    retryAfterSeconds?: number;
  }) {
    super(init.message);
    this.name = "ApiError";
    this.kind = init.kind;
    this.status = init.status;
    this.problem = init.problem;
    this.requestId = init.requestId;
    this.retryAfterSeconds = init.retryAfterSeconds;
  }

  get field(): string | undefined {
    return this.problem?.field;
  }
}

export function kindForStatus(status: number): ApiErrorKind {
  switch (status) {
    case 400:
    case 422:
      return "validation";
    case 401:
      return "unauthorized";
    case 404:
      return "not-found";
    case 413:
      return "too-large";
    case 415:
      return "unsupported-type";
    case 429:
      return "rate-limited";
    case 503:
      return "unavailable";
    default:
      return "server";
  }
}

/** Builds the error for a non-2xx response from its status, headers and body text. */
export function errorFromResponse(
  status: number,
  headers: { get(name: string): string | null },
  bodyText: string,
): ApiError {
  let problem: Problem | undefined;
  try {
    const parsed = JSON.parse(bodyText) as Problem;
    if (parsed && typeof parsed === "object" && typeof parsed.status === "number") problem = parsed;
  } catch {
    problem = undefined;
  }
  const requestId = problem?.request_id ?? headers.get("x-request-id") ?? undefined;
  const retryHeader = headers.get("retry-after");
  const retryAfter = retryHeader !== null && /^\d+$/.test(retryHeader.trim()) ? Number(retryHeader) : undefined;
  const kind = kindForStatus(status);
  const message = problem?.detail ?? problem?.title ?? `HTTP ${status}`;
  return new ApiError({ kind, status, message, problem, requestId, retryAfterSeconds: retryAfter });
}

export function offlineError(cause: unknown): ApiError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new ApiError({ kind: "offline", status: 0, message: `Could not reach the server (${detail}).` });
}

/**
 * One sentence saying what happened and what to do, for any error. Components
 * show this rather than raw messages.
 */
export function describeError(error: unknown): string {
  if (!(error instanceof ApiError)) {
    return "Something went wrong in the app. Reload the page and try again.";
  }
  switch (error.kind) {
    case "offline":
      return typeof navigator !== "undefined" && navigator.onLine === false
        ? "You are offline. Check your connection, then try again."
        : "Could not reach the FlowChat server. Check that it is running and try again.";
    case "rate-limited": {
      const wait = error.retryAfterSeconds;
      return wait !== undefined
        ? `Too many requests. Try again in ${wait} second${wait === 1 ? "" : "s"}.`
        : "Too many requests. Wait a moment and try again.";
    }
    case "unauthorized":
      return "Your session has expired. Enter your nickname again to continue.";
    case "not-found":
      return "That item no longer exists. It may have been deleted.";
    case "validation":
      return error.message;
    case "too-large":
      return error.problem?.limit_bytes
        ? `The file is too large: the limit is ${formatBytes(error.problem.limit_bytes)}.`
        : `The file is too large. ${error.message}`;
    case "unsupported-type":
      return `This file type is not supported. ${error.message}`;
    case "unavailable":
      return "The service is temporarily unavailable. Try again in a few seconds.";
    case "server":
      return error.requestId
        ? `The server had a problem (request id ${error.requestId}). Try again; if it keeps happening, report that id.`
        : "The server had a problem. Try again in a moment.";
  }
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}
