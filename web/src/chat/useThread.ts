import { useEffect, useState, useSyncExternalStore } from "react";
import type { ApiClient } from "../api/client";
import { ThreadStore, type ThreadSnapshot } from "./threadStore";
import type { ConversationList } from "./useConversations";

/** The open conversation as the chat screen renders it, and what can be done with it. */
export type OpenThread = ThreadSnapshot &
  Pick<
    ThreadStore,
    | "select"
    | "reload"
    | "send"
    | "retryAnswer"
    | "reconnect"
    | "clearFailure"
    | "draft"
    | "saveDraft"
    | "deleteConversation"
  >;

/**
 * The open conversation of one chat page (see ThreadStore), kept in step with
 * the conversation list, and resumed where it was left when the page mounts.
 */
export function useThread(api: ApiClient, list: ConversationList, onUnauthorized: () => void): OpenThread {
  const [store] = useState(() => new ThreadStore(api));
  const { refresh, noteSent, remove } = list;
  useEffect(() => {
    store.callbacks = { onUnauthorized, onSent: noteSent, onListStale: () => void refresh(), onGone: remove };
  });
  useEffect(() => {
    store.start();
    return () => store.dispose();
  }, [store]);
  // A dropped connection resumes by itself when the browser is back online.
  useEffect(() => {
    window.addEventListener("online", store.reconnectAll);
    return () => window.removeEventListener("online", store.reconnectAll);
  }, [store]);
  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot);
  return {
    ...snapshot,
    select: store.select,
    reload: store.reload,
    send: store.send,
    retryAnswer: store.retryAnswer,
    reconnect: store.reconnect,
    clearFailure: store.clearFailure,
    draft: store.draft,
    saveDraft: store.saveDraft,
    deleteConversation: store.deleteConversation,
  };
}
