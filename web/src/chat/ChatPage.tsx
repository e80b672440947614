import type { ApiClient } from "../api/client";

export interface ChatPageProps {
  api: ApiClient;
  /** Called when the API answers 401: the session is gone. */
  onUnauthorized: () => void;
}

/** Placeholder until the chat screen lands (sidebar, thread, composer). */
export function ChatPage(_props: ChatPageProps) {
  return <main className="chat">Chat</main>;
}
