import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import { describeError } from "../api/errors";
import type { SendFeedback } from "./Feedback";
import { MessageView } from "./Message";
import { isActive, type ViewMessage } from "./types";

interface ThreadProps {
  messages: ViewMessage[];
  /** The conversation is being loaded. */
  loading: boolean;
  /** Loading the conversation failed. */
  error?: unknown;
  onRetryLoad?: () => void;
  /** Said once by screen readers, e.g. "Answer ready." */
  announcement?: string;
  onRetryAnswer?: (key: string) => void;
  onReconnect?: (key: string) => void;
  /** Saves 👍/👎 on finished answers (buttons shown only with it). */
  onFeedback?: SendFeedback;
  /** Changes when another conversation is opened: the view jumps to its end. */
  viewKey?: string | number;
}

/** Within this many pixels of the end counts as "at the bottom". */
const STICK_THRESHOLD = 64;

/**
 * The messages of one conversation. Follows new content to the bottom
 * unless the reader has scrolled up; then offers "Jump to latest".
 */
export function Thread({
  messages,
  loading,
  error,
  onRetryLoad,
  announcement = "",
  onRetryAnswer,
  onReconnect,
  onFeedback,
  viewKey,
}: ThreadProps) {
  const scrollRef = useRef<HTMLElement>(null);
  const stickRef = useRef(true);
  const [awayFromBottom, setAwayFromBottom] = useState(false);
  const lastUserKey = useRef<string | undefined>(undefined);
  const busy = messages.some(isActive);

  const scrollToBottom = useCallback(() => {
    const el = scrollRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, []);

  // Another conversation: start at its end.
  useEffect(() => {
    stickRef.current = true;
    setAwayFromBottom(false);
  }, [viewKey]);

  useLayoutEffect(() => {
    // The reader just sent a message: always show it.
    const lastUser = [...messages].reverse().find((m) => m.role === "user")?.key;
    if (lastUser !== lastUserKey.current) {
      lastUserKey.current = lastUser;
      stickRef.current = true;
      setAwayFromBottom(false);
    }
    if (stickRef.current) scrollToBottom();
  }, [messages, loading, scrollToBottom]);

  function onScroll() {
    const el = scrollRef.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight <= STICK_THRESHOLD;
    stickRef.current = atBottom;
    setAwayFromBottom(!atBottom);
  }

  let body;
  if (loading) {
    body = (
      <div className="thread-loading" role="status">
        <span className="visually-hidden">Loading conversation…</span>
        <div className="skeleton skeleton-user" aria-hidden="true" />
        <div className="skeleton skeleton-answer" aria-hidden="true" />
        <div className="skeleton skeleton-answer short" aria-hidden="true" />
      </div>
    );
  } else if (messages.length === 0 && !error) {
    body = (
      <div className="welcome">
        <h2>Ask about your documents</h2>
        <p>FlowChat answers from your documents and shows the sources behind every answer.</p>
        <p className="muted">
          Upload a document in the Documents panel, or type a question below to get started.
        </p>
      </div>
    );
  } else {
    body = (
      <div role="log" aria-busy={busy} className="message-list">
        {messages.map((message) => (
          <MessageView
            key={message.key}
            message={message}
            onRetry={onRetryAnswer}
            onReconnect={onReconnect}
            onFeedback={onFeedback}
          />
        ))}
      </div>
    );
  }

  return (
    <div className="thread">
      {/* Focusable so keyboard users can scroll it even when nothing inside takes focus. */}
      <section ref={scrollRef} aria-label="Messages" className="thread-scroll" tabIndex={0} onScroll={onScroll}>
        <div className="thread-inner">
          {error !== undefined && error !== null && (
            <div className="banner banner-error thread-error" role="alert">
              <p>{describeError(error)}</p>
              {onRetryLoad && (
                <button type="button" onClick={onRetryLoad}>
                  Retry
                </button>
              )}
            </div>
          )}
          {body}
        </div>
      </section>
      {awayFromBottom && !loading && messages.length > 0 && (
        <button
          type="button"
          className="jump-latest"
          onClick={() => {
            stickRef.current = true;
            setAwayFromBottom(false);
            scrollToBottom();
          }}
        >
          Jump to latest
        </button>
      )}
      <div role="status" className="visually-hidden">
        {announcement}
      </div>
    </div>
  );
}
