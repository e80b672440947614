import { useEffect, useRef, useState, type KeyboardEvent } from "react";
import { createPortal } from "react-dom";
import { describeError } from "../api/errors";
import type { ConversationSummary } from "../api/types";
import { ConfirmDialog } from "../ConfirmDialog";

export interface SidebarProps {
  id: string;
  /** `null` while the first list is loading. */
  conversations: ConversationSummary[] | null;
  currentId: string | null;
  error?: unknown;
  onRetry?: () => void;
  onSelect: (id: string) => void;
  onNew: () => void;
  /** Deletes after the confirmation; resolves true when it is gone. */
  onDelete: (conversation: ConversationSummary) => Promise<boolean>;
  /** Narrow screens: the list is shown as an overlay. */
  open: boolean;
  onClose: () => void;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });

function when(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const today = new Date();
  return date.toDateString() === today.toDateString() ? timeFormat.format(date) : dateFormat.format(date);
}

/** The conversations, most recent first, with "New chat" and delete. */
export function Sidebar({
  id,
  conversations,
  currentId,
  error,
  onRetry,
  onSelect,
  onNew,
  onDelete,
  open,
  onClose,
}: SidebarProps) {
  const [confirming, setConfirming] = useState<ConversationSummary | null>(null);
  const navRef = useRef<HTMLElement>(null);

  // Opened as an overlay: move focus into it.
  useEffect(() => {
    if (open) navRef.current?.querySelector<HTMLElement>("button")?.focus();
  }, [open]);

  function onKeyDown(event: KeyboardEvent) {
    if (open && event.key === "Escape" && !confirming) {
      event.stopPropagation();
      onClose();
    }
  }

  return (
    <nav
      ref={navRef}
      id={id}
      aria-label="Conversations"
      className={`chat-sidebar${open ? " is-open" : ""}`}
      onKeyDown={onKeyDown}
    >
      <div className="sidebar-head">
        <button type="button" className="primary new-chat" onClick={onNew}>
          New chat
        </button>
        <button type="button" className="sidebar-close" onClick={onClose}>
          Close
        </button>
      </div>
      {error !== undefined && error !== null && (
        <div className="banner banner-error sidebar-error" role="alert">
          <p>{describeError(error)}</p>
          {onRetry && (
            <button type="button" onClick={onRetry}>
              Retry
            </button>
          )}
        </div>
      )}
      {conversations === null ? (
        !error && (
          <p className="sidebar-note muted" role="status">
            Loading conversations…
          </p>
        )
      ) : conversations.length === 0 ? (
        <p className="sidebar-note muted">No conversations yet</p>
      ) : (
        <ul className="conversation-list">
          {conversations.map((conversation) => {
            const current = conversation.id === currentId;
            return (
              <li key={conversation.id} className={`conversation${current ? " is-current" : ""}`}>
                <button
                  type="button"
                  className="conversation-open"
                  aria-current={current ? "page" : undefined}
                  onClick={() => onSelect(conversation.id)}
                >
                  <span className="conversation-title">{conversation.title || "Untitled conversation"}</span>
                  <span className="conversation-meta">
                    <time dateTime={conversation.updated_at}>{when(conversation.updated_at)}</time>
                  </span>
                </button>
                <button
                  type="button"
                  className="conversation-delete"
                  aria-label={`Delete conversation "${conversation.title}"`}
                  title="Delete conversation"
                  onClick={() => setConfirming(conversation)}
                >
                  <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" focusable="false">
                    <path
                      fill="currentColor"
                      d="M9 3h6l1 2h4v2H4V5h4l1-2Zm-3 6h12l-1 12H7L6 9Zm4 2v8h1.5v-8H10Zm3.5 0v8H15v-8h-1.5Z"
                    />
                  </svg>
                </button>
              </li>
            );
          })}
        </ul>
      )}
      {confirming &&
        createPortal(
        <ConfirmDialog
          title="Delete conversation?"
          confirmLabel="Delete"
          destructive
          onCancel={() => setConfirming(null)}
          onConfirm={() => {
            const target = confirming;
            setConfirming(null);
            void onDelete(target).then((deleted) => {
              // The item and its button are gone: put focus somewhere sensible.
              if (deleted) navRef.current?.querySelector<HTMLElement>(".new-chat")?.focus();
            });
          }}
        >
          <p>
            “{confirming.title}” and all its messages will be deleted. This cannot be undone.
          </p>
        </ConfirmDialog>,
          document.body,
        )}
    </nav>
  );
}
