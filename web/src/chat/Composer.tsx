import { useEffect, useId, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { ApiError, describeError } from "../api/errors";
import { charCount, MESSAGE_MAX_CHARS, messageError } from "../validation";

/** A failed send and when it happened (for the rate-limit countdown). */
export interface SendFailure {
  error: unknown;
  at: number;
}

export interface ComposerProps {
  /** The draft to start from (kept per conversation by the page). */
  initialDraft?: string;
  onDraftChange?: (draft: string) => void;
  /** Sends the (trimmed) message; resolves true when the server took it. */
  onSend: (message: string) => Promise<boolean>;
  /** A message is being sent (the POST is in flight): the draft stays, Send waits. */
  sending: boolean;
  /** Sending is not possible right now (e.g. the conversation is loading). */
  locked?: boolean;
  failure?: SendFailure | null;
  /** The rate-limit wait is over. */
  onCooldownEnd?: () => void;
}

/** From here on the counter warns that the limit is near. */
const WARN_AT = Math.floor(MESSAGE_MAX_CHARS * 0.9);

function secondsLeft(failure: SendFailure | null | undefined, now: number): number {
  if (!failure || !(failure.error instanceof ApiError) || failure.error.kind !== "rate-limited") return 0;
  const wait = failure.error.retryAfterSeconds;
  if (wait === undefined) return 0;
  return Math.max(0, Math.ceil(wait - (now - failure.at) / 1000));
}

/**
 * The message box. Enter sends, Shift+Enter adds a line; the draft is kept
 * until the server has taken the message.
 */
export function Composer({
  initialDraft = "",
  onDraftChange,
  onSend,
  sending,
  locked = false,
  failure,
  onCooldownEnd,
}: ComposerProps) {
  const [draft, setDraft] = useState(initialDraft);
  const [invalid, setInvalid] = useState<string | null>(null);
  const [now, setNow] = useState(() => Date.now());
  const textareaRef = useRef<HTMLTextAreaElement>(null);
  const ids = useId();
  const counterId = `${ids}-counter`;
  const invalidId = `${ids}-invalid`;
  const alertId = `${ids}-alert`;

  const count = charCount(draft);
  const over = count > MESSAGE_MAX_CHARS;
  const near = !over && count >= WARN_AT;
  const waiting = secondsLeft(failure, now);
  const busy = sending || locked;

  // Count the rate-limit wait down, one tick per whole second.
  useEffect(() => {
    const start = Date.now();
    setNow(start);
    if (secondsLeft(failure, start) <= 0) return;
    let timer: ReturnType<typeof setTimeout>;
    const tick = () => {
      const at = Date.now();
      setNow(at);
      if (secondsLeft(failure, at) <= 0) {
        onCooldownEnd?.();
        return;
      }
      const elapsed = at - (failure?.at ?? at);
      timer = setTimeout(tick, 1000 - (elapsed % 1000) || 1000);
    };
    const elapsed = start - (failure?.at ?? start);
    timer = setTimeout(tick, 1000 - (elapsed % 1000) || 1000);
    return () => clearTimeout(timer);
    // onCooldownEnd is a callback from the page; restarting the countdown for it is not wanted.
  }, [failure]);

  function update(next: string) {
    setDraft(next);
    onDraftChange?.(next);
    if (invalid) setInvalid(null);
  }

  async function submit() {
    if (busy || waiting > 0) return;
    if (draft.trim() === "") {
      textareaRef.current?.focus();
      return;
    }
    const problem = messageError(draft);
    if (problem) {
      setInvalid(problem.charAt(0).toUpperCase() + problem.slice(1) + ".");
      return;
    }
    setInvalid(null);
    const sent = await onSend(draft.trim());
    if (sent) {
      setDraft("");
      onDraftChange?.("");
      textareaRef.current?.focus();
    }
  }

  function onSubmit(event: FormEvent) {
    event.preventDefault();
    void submit();
  }

  function onKeyDown(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key !== "Enter" || event.shiftKey || event.altKey) return;
    // Enter confirms an IME composition (Japanese, Chinese…): never send then.
    if (event.nativeEvent.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    void submit();
  }

  const describedBy = [counterId, invalid ? invalidId : null, failure ? alertId : null].filter(Boolean).join(" ");

  return (
    <form className="composer" onSubmit={onSubmit} aria-busy={sending}>
      {failure && (
        <div className="banner banner-error composer-alert" id={alertId}>
          {waiting > 0 ? (
            <>
              {/* Announced once with the wait as it was; the visible countdown
                  is a timer, which screen readers do not re-read every second. */}
              <p role="alert">
                Too many requests. <span className="visually-hidden">{describeError(failure.error).replace(/^Too many requests\. /, "")}</span>
              </p>
              <p role="timer" className="composer-countdown">
                Try again in {waiting} second{waiting === 1 ? "" : "s"}.
              </p>
            </>
          ) : (
            <p role="alert">{describeError(failure.error)}</p>
          )}
        </div>
      )}
      <label htmlFor={`${ids}-message`} className="visually-hidden">
        Message
      </label>
      <div className="composer-row">
        <textarea
          ref={textareaRef}
          id={`${ids}-message`}
          name="message"
          rows={2}
          value={draft}
          placeholder="Ask a question about your documents…"
          readOnly={busy}
          aria-invalid={over || invalid !== null}
          aria-describedby={describedBy}
          onChange={(event) => update(event.target.value)}
          onKeyDown={onKeyDown}
        />
        <button type="submit" className="primary composer-send" disabled={busy || waiting > 0 || over}>
          {sending ? "Sending…" : "Send"}
        </button>
      </div>
      <div className="composer-meta">
        <span className="composer-hint muted">Enter to send, Shift+Enter for a new line</span>
        <span id={counterId} className={`composer-counter${over ? " is-over" : near ? " is-near" : ""}`}>
          {count} / {MESSAGE_MAX_CHARS}
          <span className="visually-hidden">
            {" "}
            characters{over ? ", over the limit" : near ? ", close to the limit" : ""}
          </span>
        </span>
      </div>
      {invalid && (
        <p id={invalidId} className="field-error" role="alert">
          {invalid}
        </p>
      )}
    </form>
  );
}
