import { useCallback, useEffect, useRef, useState } from "react";
import type { ApiClient } from "../api/client";
import { ApiError, describeError } from "../api/errors";
import type { ChatJob, Conversation, ConversationSummary } from "../api/types";
import { provisionalTitle } from "./answerText";
import { Composer, type SendFailure } from "./Composer";
import {
  forgetPending,
  pendingFor,
  readOpenConversation,
  rememberOpenConversation,
  rememberPending,
  type PendingJob,
} from "./pending";
import { Sidebar } from "./Sidebar";
import { Thread } from "./Thread";
import type { ViewMessage } from "./types";
import { useConversations } from "./useConversations";
import "./chat.css";

export interface ChatPageProps {
  api: ApiClient;
  /** Called when the API answers 401: the session is gone. */
  onUnauthorized: () => void;
}

/** The conversation on screen, and the controller that stops following its jobs. */
interface View {
  id: string | null;
  controller: AbortController;
}

type FocusTarget = "composer" | "title" | "toggle";

const SIDEBAR_ID = "chat-conversations";
const NEW_CHAT = "new";

const answerKey = (jobId: string) => `a-${jobId}`;

function isUnauthorized(error: unknown): boolean {
  return error instanceof ApiError && error.kind === "unauthorized";
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
      : { key: `a-${m.job_id ?? i}-${i}`, role: "assistant", content: m.content, citations: m.citations ?? [], phase: "done" },
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
 * The chat screen: conversations on the side, the open conversation's
 * messages, and the message box. Answers stream in as they are written and
 * survive a reload or a switch to another conversation.
 */
export function ChatPage({ api, onUnauthorized }: ChatPageProps) {
  const list = useConversations(api, onUnauthorized);
  const [currentId, setCurrentId] = useState<string | null>(null);
  const [viewKey, setViewKey] = useState(0);
  const [messages, setMessages] = useState<ViewMessage[]>([]);
  const [loading, setLoading] = useState(false);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [loadedTitle, setLoadedTitle] = useState<string | null>(null);
  const [sending, setSending] = useState(false);
  const [failure, setFailure] = useState<SendFailure | null>(null);
  const [announcement, setAnnouncement] = useState("");
  const [sidebarOpen, setSidebarOpen] = useState(false);
  const [actionError, setActionError] = useState<{ error: unknown; retry: () => void } | null>(null);
  const [focusTarget, setFocusTarget] = useState<{ target: FocusTarget } | null>(null);

  const view = useRef<View>({ id: null, controller: new AbortController() });
  const drafts = useRef(new Map<string, string>());
  const messagesRef = useRef(messages);
  messagesRef.current = messages;
  const mainRef = useRef<HTMLElement>(null);
  const titleRef = useRef<HTMLHeadingElement>(null);
  const toggleRef = useRef<HTMLButtonElement>(null);
  const unauthorizedRef = useRef(onUnauthorized);
  unauthorizedRef.current = onUnauthorized;
  const { refresh: refreshList, upsert: upsertConversation, remove: removeConversation } = list;
  const conversationsRef = useRef(list.conversations);
  conversationsRef.current = list.conversations;

  /** Follows a job until its answer is in, updating its bubble as text streams. */
  const follow = useCallback(
    (conversationId: string, jobId: string, signal: AbortSignal) => {
      const key = answerKey(jobId);
      const patch = (change: (m: ViewMessage) => Partial<ViewMessage>) => {
        if (signal.aborted) return;
        setMessages((all) => all.map((m) => (m.key === key ? { ...m, ...change(m) } : m)));
      };
      api
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
              patch(() => ({ phase: "done", status: job.status, content: job.answer ?? "", citations: job.citations ?? [] }));
              setAnnouncement("Answer ready.");
            } else {
              patch(() => ({ phase: "failed", status: job.status, content: "", error: failedSentence(job) }));
              setAnnouncement("The answer failed.");
            }
            void refreshList();
          },
          (error: unknown) => {
            if (signal.aborted || isAbort(error)) return;
            if (isUnauthorized(error)) {
              unauthorizedRef.current();
              return;
            }
            if (error instanceof ApiError && error.kind === "not-found") {
              // The job expired or never existed: nothing left to follow.
              forgetPending(conversationId, jobId);
              patch(() => ({ phase: "failed", content: "", error: "This answer is no longer available. Ask again to get a new one." }));
              return;
            }
            patch(() => ({ phase: "disconnected", error: `Lost the connection while the answer was being written. ${describeError(error)}` }));
          },
        );
    },
    [api, refreshList],
  );

  /** Shows conversation `id` (or a new, empty chat for `null`), stopping whatever the old one followed. */
  const openConversation = useCallback(
    (id: string | null, restoring = false) => {
      view.current.controller.abort();
      const controller = new AbortController();
      const current: View = { id, controller };
      view.current = current;
      setCurrentId(id);
      setViewKey((k) => k + 1);
      rememberOpenConversation(id);
      setLoadError(null);
      setLoadedTitle(null);
      // A send error belongs to the conversation it happened in; a rate limit holds everywhere.
      setFailure((f) => (f && f.error instanceof ApiError && f.error.kind === "rate-limited" ? f : null));
      setAnnouncement("");
      setMessages([]);
      if (id === null) {
        setLoading(false);
        return;
      }
      setLoading(true);
      api.getConversation(id).then(
        (conversation) => {
          if (controller.signal.aborted) return;
          const { messages: loaded, pending } = toView(conversation);
          setMessages(loaded);
          setLoadedTitle(conversation.title);
          setLoading(false);
          if (pending) follow(id, pending.job_id, controller.signal);
        },
        (error: unknown) => {
          if (controller.signal.aborted) return;
          setLoading(false);
          if (isUnauthorized(error)) {
            unauthorizedRef.current();
            return;
          }
          if (error instanceof ApiError && error.kind === "not-found") {
            forgetPending(id);
            removeConversation(id);
            if (restoring) {
              // The conversation remembered from last time is gone: start fresh, quietly.
              openConversation(null);
              return;
            }
          }
          setLoadError(error);
        },
      );
    },
    [api, follow, removeConversation],
  );

  // Come back to the conversation that was open before a reload; stop following on unmount.
  useEffect(() => {
    const remembered = readOpenConversation();
    if (remembered) openConversation(remembered, true);
    else view.current = { id: null, controller: new AbortController() }; // fresh after a StrictMode remount
    return () => view.current.controller.abort();
  }, [openConversation]);

  // A dropped connection resumes by itself when the browser is back online.
  useEffect(() => {
    const onOnline = () => {
      const { id, controller } = view.current;
      if (!id) return;
      for (const m of messagesRef.current) {
        if (m.phase === "disconnected" && m.jobId) {
          setMessages((all) => all.map((x) => (x.key === m.key ? { ...x, phase: "waiting", error: undefined } : x)));
          follow(id, m.jobId, controller.signal);
        }
      }
    };
    window.addEventListener("online", onOnline);
    return () => window.removeEventListener("online", onOnline);
  }, [follow]);

  useEffect(() => {
    if (!focusTarget) return;
    if (focusTarget.target === "composer") mainRef.current?.querySelector("textarea")?.focus();
    else if (focusTarget.target === "title") titleRef.current?.focus();
    else toggleRef.current?.focus();
  }, [focusTarget]);

  /** Sends `text` to the open conversation (starting one for a new chat). */
  const send = useCallback(
    async (text: string, replaceKey?: string): Promise<boolean> => {
      const origin = view.current;
      setSending(true);
      setFailure(null);
      try {
        const submitted = await api.sendMessage(text, origin.id ?? undefined);
        const conversationId = submitted.conversation_id;
        rememberPending(conversationId, { job_id: submitted.job_id, question: text });
        const now = new Date().toISOString();
        const known = conversationsRef.current?.find((c) => c.id === conversationId);
        upsertConversation(
          known
            ? { ...known, updated_at: now, message_count: known.message_count + 1 }
            : { id: conversationId, title: provisionalTitle(text), message_count: 1, created_at: now, updated_at: now },
        );
        void refreshList();
        if (view.current === origin && !origin.controller.signal.aborted) {
          if (origin.id === null) {
            if (!replaceKey) drafts.current.delete(NEW_CHAT);
            origin.id = conversationId;
            setCurrentId(conversationId);
            rememberOpenConversation(conversationId);
          }
          setAnnouncement("");
          setMessages((all) => [
            ...all.filter((m) => m.key !== replaceKey),
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
          ]);
          follow(conversationId, submitted.job_id, origin.controller.signal);
        }
        return true;
      } catch (error) {
        if (isUnauthorized(error)) {
          unauthorizedRef.current();
          return false;
        }
        setFailure({ error, at: Date.now() });
        return false;
      } finally {
        setSending(false);
      }
    },
    [api, follow, refreshList, upsertConversation],
  );

  const sendingRef = useRef(sending);
  sendingRef.current = sending;
  const retryAnswer = useCallback(
    (key: string) => {
      const message = messagesRef.current.find((m) => m.key === key);
      if (!message || message.question === undefined || sendingRef.current) return;
      void send(message.question, key);
    },
    [send],
  );

  const reconnect = useCallback(
    (key: string) => {
      const message = messagesRef.current.find((m) => m.key === key);
      const { id, controller } = view.current;
      if (!message?.jobId || !id) return;
      setMessages((all) => all.map((m) => (m.key === key ? { ...m, phase: "waiting", error: undefined } : m)));
      follow(id, message.jobId, controller.signal);
    },
    [follow],
  );

  const deleteConversation = useCallback(
    async (conversation: ConversationSummary): Promise<boolean> => {
      setActionError(null);
      try {
        await api.deleteConversation(conversation.id);
      } catch (error) {
        if (isUnauthorized(error)) {
          unauthorizedRef.current();
          return false;
        }
        // Already gone is what was wanted.
        if (!(error instanceof ApiError && error.kind === "not-found")) {
          setActionError({ error, retry: () => void deleteConversation(conversation) });
          return false;
        }
      }
      forgetPending(conversation.id);
      drafts.current.delete(conversation.id);
      removeConversation(conversation.id);
      if (view.current.id === conversation.id) openConversation(null);
      void refreshList();
      return true;
    },
    [api, openConversation, refreshList, removeConversation],
  );

  function closeSidebar(focus: FocusTarget | null) {
    setSidebarOpen(false);
    if (focus) setFocusTarget({ target: focus });
  }

  function selectConversation(id: string) {
    const overlay = sidebarOpen;
    if (id !== view.current.id || loadError) openConversation(id);
    closeSidebar(overlay ? "title" : null);
  }

  function newChat() {
    if (view.current.id !== null || loadError) openConversation(null);
    closeSidebar("composer");
  }

  const draftKey = currentId ?? NEW_CHAT;
  const title = currentId
    ? (list.conversations?.find((c) => c.id === currentId)?.title ?? loadedTitle ?? (loading ? "Loading…" : "Conversation"))
    : "New chat";

  return (
    <main ref={mainRef} className={`chat${sidebarOpen ? " sidebar-open" : ""}`}>
      <Sidebar
        id={SIDEBAR_ID}
        conversations={list.conversations}
        currentId={currentId}
        error={actionError?.error ?? list.error}
        onRetry={actionError?.retry ?? (() => void refreshList())}
        onSelect={selectConversation}
        onNew={newChat}
        onDelete={deleteConversation}
        open={sidebarOpen}
        onClose={() => closeSidebar("toggle")}
      />
      {sidebarOpen && <div className="sidebar-backdrop" aria-hidden="true" onClick={() => closeSidebar("toggle")} />}
      <div className="chat-main">
        <header className="chat-header">
          <button
            ref={toggleRef}
            type="button"
            className="sidebar-toggle"
            aria-expanded={sidebarOpen}
            aria-controls={SIDEBAR_ID}
            onClick={() => setSidebarOpen((open) => !open)}
          >
            Conversations
          </button>
          <h1 ref={titleRef} className="chat-title" tabIndex={-1}>
            {title}
          </h1>
        </header>
        <Thread
          messages={messages}
          loading={loading}
          error={loadError}
          onRetryLoad={currentId ? () => openConversation(currentId) : undefined}
          announcement={announcement}
          onRetryAnswer={retryAnswer}
          onReconnect={reconnect}
          viewKey={viewKey}
        />
        <div className="composer-bar">
        <Composer
          key={viewKey}
          initialDraft={drafts.current.get(draftKey) ?? ""}
          onDraftChange={(draft) => {
            if (draft) drafts.current.set(draftKey, draft);
            else drafts.current.delete(draftKey);
          }}
          onSend={send}
          sending={sending}
          locked={loading}
          failure={failure}
          onCooldownEnd={() => setFailure(null)}
        />
        </div>
      </div>
    </main>
  );
}
