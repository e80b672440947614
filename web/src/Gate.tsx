import { useId, useState, type FormEvent } from "react";
import type { ApiClient } from "./api/client";
import { ApiError, describeError } from "./api/errors";
import type { Session } from "./api/types";
import { NICKNAME_MAX_CHARS, nicknameError } from "./validation";

interface GateProps {
  api: ApiClient;
  onSession: (session: Session) => void;
}

/** The nickname gate: a session starts here. */
export function Gate({ api, onSession }: GateProps) {
  const [nickname, setNickname] = useState("");
  const [fieldError, setFieldError] = useState<string | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const inputId = useId();
  const errorId = useId();

  async function submit(event: FormEvent) {
    event.preventDefault();
    setFormError(null);
    const problem = nicknameError(nickname);
    setFieldError(problem);
    if (problem) return;
    setBusy(true);
    try {
      onSession(await api.createSession(nickname.trim().normalize("NFC")));
    } catch (error) {
      if (error instanceof ApiError && error.field === "nickname") setFieldError(error.message);
      else setFormError(describeError(error));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="gate">
      <form className="gate-card" onSubmit={submit} noValidate aria-labelledby="gate-title">
        <h1 id="gate-title">FlowChat</h1>
        <p className="muted">Answers grounded on your documents, with sources you can check.</p>
        <label htmlFor={inputId}>Nickname</label>
        <input
          id={inputId}
          name="nickname"
          autoComplete="nickname"
          autoFocus
          value={nickname}
          maxLength={NICKNAME_MAX_CHARS * 2}
          aria-invalid={fieldError ? true : undefined}
          aria-describedby={fieldError ? errorId : undefined}
          onChange={(e) => {
            setNickname(e.target.value);
            if (fieldError) setFieldError(null);
          }}
        />
        <p className="hint muted">
          Up to {NICKNAME_MAX_CHARS} letters, digits, spaces and - _ . '
        </p>
        {fieldError && (
          <p id={errorId} className="field-error" role="alert">
            {capitalise(fieldError)}
          </p>
        )}
        {formError && (
          <p className="banner banner-error" role="alert">
            {formError}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Starting…" : "Start chatting"}
        </button>
      </form>
    </main>
  );
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
