import type { AnswerMode, Citation, GivenFeedback, JobStatus } from "../api/types";

/**
 * One message as the thread shows it. Assistant messages carry the state of
 * the job that writes them:
 * - `waiting`: queued or running, no text yet ("Thinking…");
 * - `streaming`: partial text is arriving;
 * - `done`: the answer, with its citations;
 * - `failed`: the job failed for good ("Try again" resends the question);
 * - `disconnected`: following the job failed (network); "Reconnect" resumes it.
 */
export type AnswerPhase = "waiting" | "streaming" | "done" | "failed" | "disconnected";

export interface ViewMessage {
  key: string;
  role: "user" | "assistant";
  content: string;
  citations?: Citation[] | null;
  /** How a finished answer was made, when the server said. */
  mode?: AnswerMode | null;
  phase?: AnswerPhase;
  /** Job status while waiting, and the error of an attempt that will be retried. */
  status?: JobStatus;
  attemptError?: string | null;
  /** What went wrong, as a sentence for people (failed, disconnected). */
  error?: string;
  /** The question an assistant message answers, for "Try again". */
  question?: string;
  jobId?: string;
  /** The reader's feedback on a finished answer, as the server last had it. */
  feedback?: GivenFeedback | null;
}

export function isActive(message: ViewMessage): boolean {
  return message.role === "assistant" && (message.phase === "waiting" || message.phase === "streaming");
}
