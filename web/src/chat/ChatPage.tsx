import { useCallback, useEffect, useRef, useState } from "react";
import type { ApiClient } from "../api/client";
import { ApiError } from "../api/errors";
import type { FeedbackRating } from "../api/types";
import { Composer } from "./Composer";
import { Sidebar } from "./Sidebar";
import { Thread } from "./Thread";
import { useConversations } from "./useConversations";
import { useThread } from "./useThread";
import "./chat.css";

export interface ChatPageProps {
  api: ApiClient;
  /** Called when the API answers 401: the session is gone. */
  onUnauthorized: () => void;
}

type FocusTarget = "composer" | "title" | "toggle";

const SIDEBAR_ID = "chat-conversations";

/**
 * The chat screen: conversations on the side, the open conversation's
 * messages, and the message box. What the open conversation does (loading,
 * streaming answers, sending) is `useThread`'s; this page lays it out and
 * moves focus around the sidebar overlay.
 */
export function ChatPage({ api, onUnauthorized }: ChatPageProps) {
  const list = useConversations(api, onUnauthorized);
  const thread = useThread(api, list, onUnauthorized);
  const sendFeedback = useCallback(
    async (jobId: string, rating: FeedbackRating, comment?: string) => {
      try {
        await api.putFeedback(jobId, rating, comment);
      } catch (e) {
        if (e instanceof ApiError && e.kind === "unauthorized") onUnauthorized();
        throw e;
      }
    },
    [api, onUnauthorized],
  );
  const [sidebarOpen, setSidebarOpen] = useState(false);
  const [focusTarget, setFocusTarget] = useState<{ target: FocusTarget } | null>(null);
  const mainRef = useRef<HTMLElement>(null);
  const titleRef = useRef<HTMLHeadingElement>(null);
  const toggleRef = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    if (!focusTarget) return;
    if (focusTarget.target === "composer") mainRef.current?.querySelector("textarea")?.focus();
    else if (focusTarget.target === "title") titleRef.current?.focus();
    else toggleRef.current?.focus();
  }, [focusTarget]);

  function closeSidebar(focus: FocusTarget | null) {
    setSidebarOpen(false);
    if (focus) setFocusTarget({ target: focus });
  }

  function selectConversation(id: string) {
    const overlay = sidebarOpen;
    thread.select(id);
    closeSidebar(overlay ? "title" : null);
  }

  function newChat() {
    thread.select(null);
    closeSidebar("composer");
  }

  const { conversationId, loading } = thread;
  const title = conversationId
    ? (list.conversations?.find((c) => c.id === conversationId)?.title ?? thread.loadedTitle ?? (loading ? "Loading…" : "Conversation"))
    : "New chat";

  return (
    <main ref={mainRef} className={`chat${sidebarOpen ? " sidebar-open" : ""}`}>
      <Sidebar
        id={SIDEBAR_ID}
        conversations={list.conversations}
        currentId={conversationId}
        error={thread.deleteError?.error ?? list.error}
        onRetry={thread.deleteError?.retry ?? (() => void list.refresh())}
        onSelect={selectConversation}
        onNew={newChat}
        onDelete={thread.deleteConversation}
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
          messages={thread.messages}
          loading={loading}
          error={thread.loadError}
          onRetryLoad={conversationId ? thread.reload : undefined}
          announcement={thread.announcement}
          onRetryAnswer={thread.retryAnswer}
          onReconnect={thread.reconnect}
          onFeedback={sendFeedback}
          viewKey={thread.viewKey}
        />
        <div className="composer-bar">
          <Composer
            key={thread.viewKey}
            initialDraft={thread.draft()}
            onDraftChange={thread.saveDraft}
            onSend={thread.send}
            sending={thread.sending}
            locked={loading}
            failure={thread.failure}
            onCooldownEnd={thread.clearFailure}
          />
        </div>
      </div>
    </main>
  );
}
