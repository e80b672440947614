import { useId, useState, type FormEvent } from "react";
import { describeError } from "../api/errors";
import type { FeedbackRating, GivenFeedback } from "../api/types";

/** Saves the reader's feedback on the answer of `jobId` (the API's `PUT /api/chat/{job_id}/feedback`). */
export type SendFeedback = (jobId: string, rating: FeedbackRating, comment?: string) => Promise<void>;

interface FeedbackProps {
  jobId: string;
  /** What the server has, if anything (after a reload). */
  initial?: GivenFeedback | null;
  onSend: SendFeedback;
}

/** The longest comment the API takes, in characters. */
export const COMMENT_MAX_CHARS = 1000;

/**
 * 👍 / 👎 under a finished answer. Pressing one saves it at once (pressing
 * the other changes it); after 👎 an optional comment can be sent too.
 */
export function Feedback({ jobId, initial, onSend }: FeedbackProps) {
  const [saved, setSaved] = useState<GivenFeedback | null>(initial ?? null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [comment, setComment] = useState(initial?.comment ?? "");
  const [commentSent, setCommentSent] = useState(Boolean(initial?.comment));
  const commentId = useId();

  async function send(rating: FeedbackRating, text?: string) {
    setBusy(true);
    setError(null);
    try {
      await onSend(jobId, rating, text);
      const trimmed = text?.trim();
      setSaved({ rating, comment: trimmed ? trimmed : null });
      setCommentSent(Boolean(trimmed));
      return true;
    } catch (e) {
      setError(`Your feedback was not saved. ${describeError(e)}`);
      return false;
    } finally {
      setBusy(false);
    }
  }

  function rate(rating: FeedbackRating) {
    if (saved?.rating === rating) return;
    // Changing to 👍 drops the comment; staying on 👎 keeps it.
    void send(rating, rating === "down" && commentSent ? comment : undefined);
  }

  function submitComment(event: FormEvent) {
    event.preventDefault();
    void send("down", comment);
  }

  const tooLong = comment.trim().length > COMMENT_MAX_CHARS;

  return (
    <div className="feedback">
      <div className="feedback-buttons" role="group" aria-label="Was this answer helpful?">
        <button
          type="button"
          className="feedback-button"
          aria-label="Helpful"
          aria-pressed={saved?.rating === "up"}
          disabled={busy}
          onClick={() => rate("up")}
        >
          👍
        </button>
        <button
          type="button"
          className="feedback-button"
          aria-label="Not helpful"
          aria-pressed={saved?.rating === "down"}
          disabled={busy}
          onClick={() => rate("down")}
        >
          👎
        </button>
        {saved && !busy && !error && (
          <span className="feedback-status" role="status">
            {saved.rating === "up" ? "Thanks for your feedback." : commentSent ? "Thanks, your comment was sent." : "Thanks. Tell us what was wrong?"}
          </span>
        )}
      </div>
      {saved?.rating === "down" && (
        <form className="feedback-comment" onSubmit={submitComment}>
          <label htmlFor={commentId}>What was wrong? (optional)</label>
          <textarea
            id={commentId}
            value={comment}
            maxLength={COMMENT_MAX_CHARS + 100}
            rows={2}
            onChange={(e) => setComment(e.target.value)}
            aria-invalid={tooLong}
          />
          {tooLong && <p className="feedback-error">A comment can be at most {COMMENT_MAX_CHARS} characters.</p>}
          <button type="submit" disabled={busy || tooLong || !comment.trim()}>
            Send
          </button>
        </form>
      )}
      {error && (
        <p className="feedback-error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
