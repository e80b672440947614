import { memo, useCallback, useId, useMemo, type ReactNode } from "react";
import { citationLabel, stripSourcesBlock } from "./answerText";
import { Citations, citationId, openCitation } from "./Citations";
import { Feedback, type SendFeedback } from "./Feedback";
import { Markdown } from "./Markdown";
import type { ViewMessage } from "./types";

interface MessageProps {
  message: ViewMessage;
  /** "Try again" on a failed answer: resends its question. */
  onRetry?: (key: string) => void;
  /** "Reconnect" on an answer whose stream was lost: follows the job again. */
  onReconnect?: (key: string) => void;
  /** Saves 👍/👎 on a finished answer; without it no buttons are shown. */
  onFeedback?: SendFeedback;
}

/** One message of the thread: the person's question, or FlowChat's answer. */
export const MessageView = memo(function MessageView({ message, onRetry, onReconnect, onFeedback }: MessageProps) {
  if (message.role === "user") {
    return (
      <article className="message message-user" aria-label="You">
        <h2 className="visually-hidden">You said:</h2>
        <p className="message-text">{message.content}</p>
      </article>
    );
  }
  return (
    <article className={`message message-assistant is-${message.phase ?? "done"}`} aria-label="FlowChat">
      <h2 className="visually-hidden">FlowChat said:</h2>
      <AnswerBody message={message} onRetry={onRetry} onReconnect={onReconnect} onFeedback={onFeedback} />
    </article>
  );
});

function AnswerBody({ message, onRetry, onReconnect, onFeedback }: MessageProps) {
  switch (message.phase) {
    case "waiting":
      return (
        <p className="thinking">
          {message.status === "queued" && message.attemptError ? "That attempt failed; trying again…" : "Thinking…"}
        </p>
      );
    case "streaming":
      return <Markdown text={message.content} streaming />;
    case "failed":
    case "disconnected":
      return (
        <div className="answer-error">
          {message.content && <Markdown text={message.content} />}
          <p className="answer-error-text">{message.error}</p>
          {message.phase === "failed" && onRetry && message.question !== undefined && (
            <button type="button" onClick={() => onRetry(message.key)}>
              Try again
            </button>
          )}
          {message.phase === "disconnected" && onReconnect && (
            <button type="button" onClick={() => onReconnect(message.key)}>
              Reconnect
            </button>
          )}
        </div>
      );
    default:
      return (
        <>
          <Answer message={message} />
          {onFeedback && message.jobId && (
            <Feedback jobId={message.jobId} initial={message.feedback} onSend={onFeedback} />
          )}
        </>
      );
  }
}

/** A finished answer: its text with `[n]` markers linked to the sources listed below it. */
function Answer({ message }: { message: ViewMessage }) {
  const prefix = `cite${useId().replace(/[^A-Za-z0-9_-]/g, "")}`;
  const citations = useMemo(() => message.citations ?? [], [message.citations]);
  const text = useMemo(
    () => stripSourcesBlock(message.content, citations, message.mode),
    [message.content, citations, message.mode],
  );
  const indexes = useMemo(() => citations.map((c) => c.index), [citations]);
  const labels = useMemo(() => new Map(citations.map((c) => [c.index, citationLabel(c)])), [citations]);

  const renderMarker = useCallback(
    (index: number, key: string): ReactNode => (
      <a
        key={key}
        className="cite-ref"
        href={`#${citationId(prefix, index)}`}
        title={labels.get(index)}
        onClick={(event) => {
          event.preventDefault();
          openCitation(prefix, index);
        }}
      >
        [{index}]
      </a>
    ),
    [prefix, labels],
  );

  return (
    <>
      <Markdown text={text} citationIndexes={indexes} renderMarker={renderMarker} />
      <Citations citations={citations} idPrefix={prefix} />
    </>
  );
}
