import type { AnswerMode, Citation } from "../api/types";

/**
 * An extractive answer ends with a plain-text list of its sources
 * ("Sources:" then one `[n] label` line each). When the structured citations
 * are shown below the answer that block only repeats them, so it is removed.
 * A generative answer is the model's text and is shown as written; answers
 * stored before the server recorded a mode (`mode` unknown) are recognised
 * by the block's shape.
 */
const TRAILING_SOURCES = /(?:^|\n)[ \t]*Sources:[ \t]*(?:\r?\n[ \t]*\[\d+\][^\n]*)+\s*$/;

export function stripSourcesBlock(
  text: string,
  citations: readonly Citation[] | null | undefined,
  mode?: AnswerMode | null,
): string {
  if (!citations || citations.length === 0 || mode === "generative") return text;
  return text.replace(TRAILING_SOURCES, "").trimEnd();
}

/** "handbook.pdf · page 2", "policy.md · Remote work > Equipment". */
export function citationLabel(citation: Citation): string {
  const parts = [citation.source];
  if (citation.heading) parts.push(citation.heading);
  if (citation.page !== undefined && citation.page !== null) parts.push(`page ${citation.page}`);
  return parts.join(" · ");
}

/** A conversation's title as the server makes it (its first message on one line, cut near 60 characters). */
export function provisionalTitle(message: string): string {
  const line = message.trim().split(/\s+/).join(" ");
  const chars = Array.from(line);
  if (chars.length <= 60) return line;
  const cut = chars.slice(0, 59).join("");
  const space = cut.lastIndexOf(" ");
  return `${(space > 30 ? cut.slice(0, space) : cut).trimEnd()}…`;
}
