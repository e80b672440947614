/**
 * Answers still being written, remembered per conversation in localStorage
 * (`flowchat.pending`: conversation id → {job_id, question}) so a reload or a
 * switch back to the conversation resumes following the job instead of
 * losing it. The entry is cleared when the job finishes.
 */

export const PENDING_KEY = "flowchat.pending";

export interface PendingJob {
  job_id: string;
  question: string;
}

export type PendingMap = Record<string, PendingJob>;

function storage(): Storage | null {
  try {
    return typeof localStorage === "undefined" ? null : localStorage;
  } catch {
    return null; // storage disabled (privacy mode): pending answers just are not remembered
  }
}

export function readPending(): PendingMap {
  const raw = storage()?.getItem(PENDING_KEY);
  if (!raw) return {};
  try {
    const parsed: unknown = JSON.parse(raw);
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return {};
    const out: PendingMap = {};
    for (const [id, value] of Object.entries(parsed as Record<string, unknown>)) {
      const entry = value as Partial<PendingJob> | null;
      if (entry && typeof entry.job_id === "string" && typeof entry.question === "string") {
        out[id] = { job_id: entry.job_id, question: entry.question };
      }
    }
    return out;
  } catch {
    return {};
  }
}

function write(map: PendingMap): void {
  const store = storage();
  if (!store) return;
  try {
    if (Object.keys(map).length === 0) store.removeItem(PENDING_KEY);
    else store.setItem(PENDING_KEY, JSON.stringify(map));
  } catch {
    // quota exceeded or storage disabled: nothing more to do
  }
}

export function pendingFor(conversationId: string): PendingJob | undefined {
  return readPending()[conversationId];
}

export function rememberPending(conversationId: string, job: PendingJob): void {
  write({ ...readPending(), [conversationId]: job });
}

/** Forgets the conversation's pending job; with `jobId`, only if it is that job. */
export function forgetPending(conversationId: string, jobId?: string): void {
  const map = readPending();
  const entry = map[conversationId];
  if (!entry || (jobId !== undefined && entry.job_id !== jobId)) return;
  delete map[conversationId];
  write(map);
}

/** The conversation last open, so a reload comes back to it. */
export const OPEN_KEY = "flowchat.openConversation";

export function readOpenConversation(): string | null {
  try {
    return storage()?.getItem(OPEN_KEY) ?? null;
  } catch {
    return null;
  }
}

export function rememberOpenConversation(id: string | null): void {
  const store = storage();
  if (!store) return;
  try {
    if (id) store.setItem(OPEN_KEY, id);
    else store.removeItem(OPEN_KEY);
  } catch {
    // ignore
  }
}
