import type { ApiClient } from "../api/client";

export interface DocumentsPanelProps {
  id: string;
  api: ApiClient;
  onUnauthorized: () => void;
  /** Closes the panel on narrow screens, where it overlays the chat. */
  onClose: () => void;
}

/** Placeholder until the documents panel lands. */
export function DocumentsPanel({ id }: DocumentsPanelProps) {
  return <aside id={id} aria-label="Documents" />;
}
