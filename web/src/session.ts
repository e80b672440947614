import { useCallback, useState } from "react";
import type { Session } from "./api/types";

const STORAGE_KEY = "flowchat.session";

/** The stored session, unless it is missing, unreadable or expired. */
export function loadSession(storage: Storage = localStorage, now = Date.now()): Session | null {
  try {
    const raw = storage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const session = JSON.parse(raw) as Session;
    if (typeof session.token !== "string" || typeof session.nickname !== "string") return null;
    if (Date.parse(session.expires_at) <= now) return null;
    return session;
  } catch {
    return null;
  }
}

export function saveSession(session: Session | null, storage: Storage = localStorage): void {
  try {
    if (session) storage.setItem(STORAGE_KEY, JSON.stringify(session));
    else storage.removeItem(STORAGE_KEY);
  } catch {
    // Storage can be full or disabled (private mode): the session then lasts until reload.
  }
}

/** The session kept in local storage, so a reload keeps the user signed in. */
export function useSession(): [Session | null, (session: Session | null) => void] {
  const [session, setState] = useState<Session | null>(() => loadSession());
  const set = useCallback((next: Session | null) => {
    saveSession(next);
    setState(next);
  }, []);
  return [session, set];
}
