import type { Citation } from "../api/types";
import { citationLabel } from "./answerText";

/** The DOM id of citation `index` in the list with `prefix`. */
export function citationId(prefix: string, index: number): string {
  return `${prefix}-${index}`;
}

/** Opens citation `index` of the list with `prefix`, scrolls to it and focuses its summary. */
export function openCitation(prefix: string, index: number): void {
  const details = document.getElementById(citationId(prefix, index));
  if (!(details instanceof HTMLDetailsElement)) return;
  details.open = true;
  const summary = details.querySelector("summary");
  const reduce = typeof window.matchMedia === "function" && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  details.scrollIntoView?.({ block: "nearest", behavior: reduce ? "auto" : "smooth" });
  summary?.focus({ preventScroll: true });
  details.classList.remove("citation-flash");
  // Restart the highlight animation.
  void details.offsetWidth;
  details.classList.add("citation-flash");
}

interface CitationsProps {
  citations: readonly Citation[];
  /** Prefix for the citations' ids, unique per answer. */
  idPrefix: string;
}

/** "Sources" under an answer: one expandable entry per citation, excerpt inside. */
export function Citations({ citations, idPrefix }: CitationsProps) {
  if (citations.length === 0) return null;
  const headingId = `${idPrefix}-heading`;
  return (
    <section className="citations" aria-labelledby={headingId}>
      <h3 id={headingId} className="citations-heading">
        Sources
      </h3>
      <ul className="citation-list">
        {citations.map((citation) => (
          <li key={`${citation.index}-${citation.document_id}-${citation.chunk}`}>
            <details id={citationId(idPrefix, citation.index)} className="citation">
              <summary>
                <span className="citation-index">[{citation.index}]</span> {citationLabel(citation)}
              </summary>
              <blockquote className="citation-excerpt">{citation.excerpt}</blockquote>
            </details>
          </li>
        ))}
      </ul>
    </section>
  );
}
