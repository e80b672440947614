import { useCallback, useEffect, useRef, useState } from "react";
import type { ApiClient } from "../api/client";
import { ApiError } from "../api/errors";
import type { ConversationSummary } from "../api/types";
import { provisionalTitle } from "./answerText";

/** How often the list refreshes while the page is visible. */
export const LIST_REFRESH_MS = 30_000;

function byRecent(a: ConversationSummary, b: ConversationSummary): number {
  return b.updated_at.localeCompare(a.updated_at);
}

export interface ConversationList {
  /** `null` until the first list arrives. */
  conversations: ConversationSummary[] | null;
  error: unknown;
  refresh: () => Promise<void>;
  /** A question was just sent: its conversation goes to the top at once (before the server's list says so). */
  noteSent: (conversationId: string, question: string) => void;
  remove: (id: string) => void;
}

/**
 * The session's conversations, kept current without a reload: refreshed on
 * demand, when the window regains focus or becomes visible, and every 30 s
 * while it is visible.
 */
export function useConversations(api: ApiClient, onUnauthorized: () => void): ConversationList {
  const [conversations, setConversations] = useState<ConversationSummary[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const latest = useRef(0);
  const lastStarted = useRef(0);
  const unauthorized = useRef(onUnauthorized);
  unauthorized.current = onUnauthorized;

  const refresh = useCallback(async () => {
    const request = ++latest.current;
    lastStarted.current = Date.now();
    try {
      const list = await api.listConversations();
      if (request !== latest.current) return; // a newer refresh is under way
      setConversations([...list].sort(byRecent));
      setError(null);
    } catch (cause) {
      if (request !== latest.current) return;
      if (cause instanceof ApiError && cause.kind === "unauthorized") {
        unauthorized.current();
        return;
      }
      setError(cause);
    }
  }, [api]);

  useEffect(() => {
    void refresh();
    const visible = () => document.visibilityState !== "hidden";
    // Focus and visibility often fire together: one refresh is enough.
    const soon = () => {
      if (Date.now() - lastStarted.current > 2000) void refresh();
    };
    const onFocus = () => soon();
    const onVisibility = () => {
      if (visible()) soon();
    };
    const timer = setInterval(() => {
      if (visible()) void refresh();
    }, LIST_REFRESH_MS);
    window.addEventListener("focus", onFocus);
    document.addEventListener("visibilitychange", onVisibility);
    return () => {
      latest.current += 1; // ignore answers that arrive after unmount
      clearInterval(timer);
      window.removeEventListener("focus", onFocus);
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, [refresh]);

  const noteSent = useCallback((conversationId: string, question: string) => {
    setConversations((list) => {
      const now = new Date().toISOString();
      const known = list?.find((c) => c.id === conversationId);
      const conversation = known
        ? { ...known, updated_at: now, message_count: known.message_count + 1 }
        : { id: conversationId, title: provisionalTitle(question), message_count: 1, created_at: now, updated_at: now };
      return [conversation, ...(list ?? []).filter((c) => c.id !== conversationId)].sort(byRecent);
    });
  }, []);

  const remove = useCallback((id: string) => {
    setConversations((list) => (list ? list.filter((c) => c.id !== id) : list));
  }, []);

  return { conversations, error, refresh, noteSent, remove };
}
