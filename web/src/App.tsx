import { useCallback, useMemo, useRef, useState } from "react";
import { API_BASE_URL, ApiClient } from "./api/client";
import { ChatPage } from "./chat/ChatPage";
import { ConfirmDialog } from "./ConfirmDialog";
import { DocumentsPanel } from "./documents/DocumentsPanel";
import { Gate } from "./Gate";
import { useSession } from "./session";
import { useOnline } from "./useOnline";

/** The gate until there is a session, then the chat with its documents. */
export function App() {
  const [session, setSession] = useSession();
  const [expired, setExpired] = useState(false);
  const tokenRef = useRef<string | null>(session?.token ?? null);
  tokenRef.current = session?.token ?? null;
  const api = useMemo(() => new ApiClient(API_BASE_URL, () => tokenRef.current), []);
  const online = useOnline();

  const signOut = useCallback(() => setSession(null), [setSession]);
  const onUnauthorized = useCallback(() => {
    setExpired(true);
    setSession(null);
  }, [setSession]);

  return (
    <>
      {!online && (
        <div className="banner banner-warning offline-banner" role="status">
          You are offline. Messages and uploads will work again when your connection is back.
        </div>
      )}
      {session ? (
        <Workspace key={session.session_id} api={api} nickname={session.nickname} onSignOut={signOut} onUnauthorized={onUnauthorized} />
      ) : (
        <>
          {expired && (
            <p className="banner banner-warning gate-notice" role="status">
              Your session expired. Enter your nickname to start a new one.
            </p>
          )}
          <Gate
            api={api}
            onSession={(next) => {
              setExpired(false);
              setSession(next);
            }}
          />
        </>
      )}
    </>
  );
}

interface WorkspaceProps {
  api: ApiClient;
  nickname: string;
  onSignOut: () => void;
  onUnauthorized: () => void;
}

function Workspace({ api, nickname, onSignOut, onUnauthorized }: WorkspaceProps) {
  const [confirmingSignOut, setConfirmingSignOut] = useState(false);
  const [documentsOpen, setDocumentsOpen] = useState(false);

  return (
    <div className={`workspace${documentsOpen ? " documents-open" : ""}`}>
      <header className="topbar">
        <span className="brand">FlowChat</span>
        <div className="topbar-actions">
          <button
            type="button"
            className="documents-toggle"
            aria-expanded={documentsOpen}
            aria-controls="documents-panel"
            onClick={() => setDocumentsOpen((open) => !open)}
          >
            Documents
          </button>
          <span className="nickname" title="Your nickname">
            {nickname}
          </span>
          {/* "Change" alone at phone width; the name stays the full phrase. */}
          <button type="button" aria-label="Change nickname" onClick={() => setConfirmingSignOut(true)}>
            Change<span className="wide-only"> nickname</span>
          </button>
        </div>
      </header>
      <ChatPage api={api} onUnauthorized={onUnauthorized} />
      <DocumentsPanel id="documents-panel" api={api} onUnauthorized={onUnauthorized} onClose={() => setDocumentsOpen(false)} />
      {confirmingSignOut && (
        <ConfirmDialog
          title="Change nickname?"
          confirmLabel="Start a new session"
          onCancel={() => setConfirmingSignOut(false)}
          onConfirm={() => {
            setConfirmingSignOut(false);
            onSignOut();
          }}
        >
          <p>
            A new nickname starts a new session. Your current conversations and private documents stay with the old
            session and will no longer be shown here.
          </p>
        </ConfirmDialog>
      )}
    </div>
  );
}
