import type { ApiClient } from "../api/client";
import { ApiError, describeError } from "../api/errors";
import type { ChatJob, Conversation, ConversationSummary } from "../api/types";
import type { SendFailure } from "./Composer";
import {
  forgetPending,
  pendingFor,
  readOpenConversation,
  rememberOpenConversation,
  rememberPending,
  type PendingJob,
} from "./pending";
import type { ViewMessage } from "./types";

/** What the chat screen shows of the open conversation. */
export interface ThreadSnapshot {
  /** The conversation on screen; null for a new chat, until its first message is taken. */
  conversationId: string | null;
  /** Changes each time a conversation is opened: the composer and the scroll position start over. */
  viewKey: number;
  messages: ViewMessage[];
  /** The conversation is being loaded. */
  loading: boolean;
  /** Why loading the conversation failed, or null. */
  loadError: unknown;
  /** The conversation's title as loaded (the list may not have it yet). */
  loadedTitle: string | null;
  /** A message is on its way to the server. */
  sending: boolean;
  /** The last send that failed (kept across conversations while it is a rate limit). */
  failure: SendFailure | null;
  /** Said once by screen readers, e.g. "Answer ready." */
  announcement: string;
  /** A failed delete of a conversation, and how to try it again. */
  deleteError: { error: unknown; retry: () => void } | null;
}

export interface ThreadCallbacks {
  /** The API answered 401: the session is gone. */
  onUnauthorized?: () => void;
  /** A question went to conversation `id` (perhaps just created): list it at the top at once. */
  onSent?: (conversationId: string, question: string) => void;
  /** The list of conversations is out of date (an answer arrived, a message was sent, one was deleted). */
  onListStale?: () => void;
  /** Conversation `id` no longer exists: drop it from the list. */
  onGone?: (conversationId: string) => void;
}

/** The conversation on screen, and the controller that stops following its jobs. */
interface View {
  id: string | null;
  controller: AbortController;
}

const NEW_CHAT = "new";

const answerKey = (jobId: string) => `a-${jobId}`;

function isUnauthorized(error: unknown): boolean {
  return error instanceof ApiError && error.kind === "unauthorized";
}

function isNotFound(error: unknown): boolean {
  return error instanceof ApiError && error.kind === "not-found";
}

function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

function failedSentence(job: ChatJob): string {
  return job.error
    ? `FlowChat could not answer this question (${job.error}).`
    : "FlowChat could not answer this question.";
}

/** The server's messages as the thread shows them, and the job still to follow, if any. */
function toView(conversation: Conversation): { messages: ViewMessage[]; pending?: PendingJob } {
  const answered = new Set(
    conversation.messages.filter((m) => m.role === "assistant" && m.job_id).map((m) => m.job_id as string),
  );
  const messages: ViewMessage[] = conversation.messages.map((m, i) =>
    m.role === "user"
      ? { key: `u-${m.job_id ?? i}-${i}`, role: "user", content: m.content }
      : {
          key: `a-${m.job_id ?? i}-${i}`,
          role: "assistant",
          content: m.content,
          citations: m.citations ?? [],
          mode: m.mode ?? null,
          phase: "done",
          jobId: m.job_id ?? undefined,
          feedback: m.feedback ?? null,
        },
  );

  let pending: PendingJob | undefined;
  const stored = pendingFor(conversation.id);
  if (stored) {
    if (answered.has(stored.job_id)) forgetPending(conversation.id, stored.job_id);
    else pending = stored;
  }
  // Asked elsewhere (another tab, a lost localStorage): the last question still has no answer.
  const last = conversation.messages[conversation.messages.length - 1];
  if (!pending && last?.role === "user" && last.job_id && !answered.has(last.job_id)) {
    pending = { job_id: last.job_id, question: last.content };
  }
  if (pending) {
    messages.push({
      key: answerKey(pending.job_id),
      role: "assistant",
      content: "",
      phase: "waiting",
      question: pending.question,
      jobId: pending.job_id,
    });
  }
  return { messages, pending };
}

/**
 * The open conversation as one state machine, outside React like the upload
 * queue: opening a conversation (and coming back to the one open before a
 * reload), following its jobs as answers stream in, sending, trying a failed
 * answer again, reconnecting a dropped one, and the drafts of each
 * conversation. Opening another conversation aborts everything the old one
 * followed; its pending answers are remembered (pending.ts) and picked up
 * again on return. Components read it through `useThread`.
 */
export class ThreadStore {
  callbacks: ThreadCallbacks = {};
  private state: ThreadSnapshot = {
    conversationId: null,
    viewKey: 0,
    messages: [],
    loading: false,
    loadError: null,
    loadedTitle: null,
    sending: false,
    failure: null,
    announcement: "",
    deleteError: null,
  };
  private view: View = { id: null, controller: new AbortController() };
  private readonly drafts = new Map<string, string>();
  private readonly listeners = new Set<() => void>();

  constructor(private readonly api: ApiClient) {}

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): ThreadSnapshot => this.state;

  /** Comes back to the conversation that was open before a reload. */
  start(): void {
    const remembered = readOpenConversation();
    if (remembered) this.open(remembered, true);
    else this.view = { id: null, controller: new AbortController() }; // fresh after a StrictMode remount
  }

  /** Stops following (the page went away). */
  dispose(): void {
    this.view.controller.abort();
  }

  /** Shows conversation `id` (or a new, empty chat for `null`), stopping whatever the old one followed. */
  open = (id: string | null, restoring = false): void => {
    this.view.controller.abort();
    const controller = new AbortController();
    this.view = { id, controller };
    rememberOpenConversation(id);
    const { failure } = this.state;
    this.set({
      conversationId: id,
      viewKey: this.state.viewKey + 1,
      loadError: null,
      loadedTitle: null,
      // A send error belongs to the conversation it happened in; a rate limit holds everywhere.
      failure: failure && failure.error instanceof ApiError && failure.error.kind === "rate-limited" ? failure : null,
      announcement: "",
      messages: [],
      loading: id !== null,
    });
    if (id === null) return;
    this.api.getConversation(id).then(
      (conversation) => {
        if (controller.signal.aborted) return;
        const { messages, pending } = toView(conversation);
        this.set({ messages, loadedTitle: conversation.title, loading: false });
        if (pending) this.follow(id, pending.job_id, controller.signal);
      },
      (error: unknown) => {
        if (controller.signal.aborted) return;
        this.set({ loading: false });
        if (isUnauthorized(error)) {
          this.callbacks.onUnauthorized?.();
          return;
        }
        if (isNotFound(error)) {
          forgetPending(id);
          this.callbacks.onGone?.(id);
          if (restoring) {
            // The conversation remembered from last time is gone: start fresh, quietly.
            this.open(null);
            return;
          }
        }
        this.set({ loadError: error });
      },
    );
  };

  /** Shows `id` (null: a new chat) unless it is already on screen, loaded. */
  select = (id: string | null): void => {
    if (id !== this.view.id || this.state.loadError) this.open(id);
  };

  /** Loads the conversation on screen again (after it failed to load). */
  reload = (): void => {
    this.open(this.view.id);
  };

  /** Sends `text` to the open conversation (starting one for a new chat); resolves true when the server took it. */
  send = (text: string): Promise<boolean> => this.submit(text);

  /** Asks the question of a failed answer again, in its place. */
  retryAnswer = (key: string): void => {
    const message = this.state.messages.find((m) => m.key === key);
    if (!message || message.question === undefined || this.state.sending) return;
    void this.submit(message.question, key);
  };

  /** Follows the job of an answer whose connection dropped again. */
  reconnect = (key: string): void => {
    const message = this.state.messages.find((m) => m.key === key);
    const { id, controller } = this.view;
    if (!message?.jobId || !id) return;
    this.patchMessage(key, { phase: "waiting", error: undefined });
    this.follow(id, message.jobId, controller.signal);
  };

  /** Reconnects every dropped answer on screen (the browser is back online). */
  reconnectAll = (): void => {
    for (const m of this.state.messages) {
      if (m.phase === "disconnected") this.reconnect(m.key);
    }
  };

  /** The rate-limit wait is over: the composer may send again. */
  clearFailure = (): void => {
    this.set({ failure: null });
  };

  /** The unsent text of the conversation on screen. */
  draft = (): string => this.drafts.get(this.view.id ?? NEW_CHAT) ?? "";

  saveDraft = (draft: string): void => {
    const key = this.view.id ?? NEW_CHAT;
    if (draft) this.drafts.set(key, draft);
    else this.drafts.delete(key);
  };

  /** Deletes a conversation; leaves it for a new chat if it is on screen. Resolves true when it is gone. */
  deleteConversation = async (conversation: ConversationSummary): Promise<boolean> => {
    this.set({ deleteError: null });
    try {
      await this.api.deleteConversation(conversation.id);
    } catch (error) {
      if (isUnauthorized(error)) {
        this.callbacks.onUnauthorized?.();
        return false;
      }
      // Already gone is what was wanted.
      if (!isNotFound(error)) {
        this.set({ deleteError: { error, retry: () => void this.deleteConversation(conversation) } });
        return false;
      }
    }
    forgetPending(conversation.id);
    this.drafts.delete(conversation.id);
    this.callbacks.onGone?.(conversation.id);
    if (this.view.id === conversation.id) this.open(null);
    this.callbacks.onListStale?.();
    return true;
  };

  private async submit(text: string, replaceKey?: string): Promise<boolean> {
    const origin = this.view;
    this.set({ sending: true, failure: null });
    try {
      const submitted = await this.api.sendMessage(text, origin.id ?? undefined);
      const conversationId = submitted.conversation_id;
      rememberPending(conversationId, { job_id: submitted.job_id, question: text });
      this.callbacks.onSent?.(conversationId, text);
      this.callbacks.onListStale?.();
      if (this.view === origin && !origin.controller.signal.aborted) {
        if (origin.id === null) {
          if (!replaceKey) this.drafts.delete(NEW_CHAT);
          origin.id = conversationId;
          rememberOpenConversation(conversationId);
        }
        this.set({
          conversationId: origin.id,
          announcement: "",
          messages: [
            ...this.state.messages.filter((m) => m.key !== replaceKey),
            { key: `u-${submitted.job_id}`, role: "user", content: text },
            {
              key: answerKey(submitted.job_id),
              role: "assistant",
              content: "",
              phase: "waiting",
              status: submitted.status,
              question: text,
              jobId: submitted.job_id,
            },
          ],
        });
        this.follow(conversationId, submitted.job_id, origin.controller.signal);
      }
      return true;
    } catch (error) {
      if (isUnauthorized(error)) {
        this.callbacks.onUnauthorized?.();
        return false;
      }
      this.set({ failure: { error, at: Date.now() } });
      return false;
    } finally {
      this.set({ sending: false });
    }
  }

  /** Follows a job until its answer is in, updating its message as text streams. */
  private follow(conversationId: string, jobId: string, signal: AbortSignal): void {
    const key = answerKey(jobId);
    const patch = (change: (m: ViewMessage) => Partial<ViewMessage>) => {
      if (!signal.aborted) this.patchMessage(key, change);
    };
    this.api
      .followJob(jobId, {
        signal,
        onStatus: (status, _attempts, error) =>
          patch((m) => ({ status, attemptError: error, phase: m.phase === "streaming" ? "streaming" : "waiting" })),
        onPartial: (text) => patch(() => (text ? { phase: "streaming", content: text } : { phase: "waiting", content: "" })),
      })
      .then(
        (job) => {
          if (signal.aborted) return;
          forgetPending(conversationId, jobId);
          if (job.status === "succeeded") {
            patch(() => ({ phase: "done", status: job.status, content: job.answer ?? "", citations: job.citations ?? [], mode: job.mode ?? null }));
            this.set({ announcement: "Answer ready." });
          } else {
            patch(() => ({ phase: "failed", status: job.status, content: "", error: failedSentence(job) }));
            this.set({ announcement: "The answer failed." });
          }
          this.callbacks.onListStale?.();
        },
        (error: unknown) => {
          if (signal.aborted || isAbort(error)) return;
          if (isUnauthorized(error)) {
            this.callbacks.onUnauthorized?.();
            return;
          }
          if (isNotFound(error)) {
            // The job expired or never existed: nothing left to follow.
            forgetPending(conversationId, jobId);
            patch(() => ({ phase: "failed", content: "", error: "This answer is no longer available. Ask again to get a new one." }));
            return;
          }
          patch(() => ({ phase: "disconnected", error: `Lost the connection while the answer was being written. ${describeError(error)}` }));
        },
      );
  }

  private patchMessage(key: string, change: Partial<ViewMessage> | ((m: ViewMessage) => Partial<ViewMessage>)): void {
    this.set({
      messages: this.state.messages.map((m) => (m.key === key ? { ...m, ...(typeof change === "function" ? change(m) : change) } : m)),
    });
  }

  private set(patch: Partial<ThreadSnapshot>): void {
    this.state = { ...this.state, ...patch };
    for (const listener of this.listeners) listener();
  }
}
