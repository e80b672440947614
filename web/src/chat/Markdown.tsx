import { Fragment, memo, useMemo, type ReactNode } from "react";
import { compiler, RuleType, type MarkdownToJSX } from "markdown-to-jsx/react";

/** Only these schemes become links; anything else (javascript:, data:, relative) stays text. */
const SAFE_URL = /^(?:https?:\/\/|mailto:)/i;

export function safeHref(url: unknown): string | null {
  if (typeof url !== "string") return null;
  const trimmed = url.trim();
  return SAFE_URL.test(trimmed) ? trimmed : null;
}

interface LinkProps {
  href?: string;
  title?: string;
  children?: ReactNode;
}

function SafeLink({ href, title, children }: LinkProps) {
  const safe = safeHref(href);
  if (!safe) return <span className="md-inert-link">{children}</span>;
  return (
    <a href={safe} title={title} target="_blank" rel="noopener noreferrer">
      {children}
      <span className="visually-hidden"> (opens in a new tab)</span>
    </a>
  );
}

/** Images are not loaded (no tracking pixels, no surprise content): they become a link to the image. */
function SafeImage({ src, alt, title }: { src?: string; alt?: string; title?: string }) {
  const safe = safeHref(src);
  const label = alt ? `Image: ${alt}` : "Image";
  if (!safe) return <span className="md-inert-link">{alt ?? ""}</span>;
  return (
    <a href={safe} title={title} target="_blank" rel="noopener noreferrer">
      {label}
      <span className="visually-hidden"> (opens in a new tab)</span>
    </a>
  );
}

/** Code blocks scroll sideways inside themselves; tabIndex 0 lets keyboard users scroll them. */
function CodeBlock({ children }: { children?: ReactNode }) {
  return (
    <pre className="md-pre" tabIndex={0}>
      {children}
    </pre>
  );
}

function Table({ children }: { children?: ReactNode }) {
  return (
    <div className="md-table" tabIndex={0}>
      <table>{children}</table>
    </div>
  );
}

const OVERRIDES: MarkdownToJSX.Overrides = {
  a: SafeLink,
  img: SafeImage,
  pre: CodeBlock,
  table: Table,
};

function sanitizer(value: string, _tag: string, attribute: string): string | null {
  if (attribute === "href" || attribute === "src") return safeHref(value);
  return value;
}

const CITATION_MARKER = /(\[\d+\])/;

export interface MarkdownProps {
  text: string;
  /** While the text is still streaming: half-written syntax is held back. */
  streaming?: boolean;
  /** Citation indexes whose `[n]` markers become links to the source. */
  citationIndexes?: readonly number[];
  /** Renders one `[n]` marker (only called for indexes in `citationIndexes`). */
  renderMarker?: (index: number, key: string) => ReactNode;
}

/**
 * Markdown from the model, rendered safely: raw HTML stays literal text,
 * only http(s) and mailto links survive, images are not loaded.
 */
export const Markdown = memo(function Markdown({ text, streaming = false, citationIndexes, renderMarker }: MarkdownProps) {
  const indexKey = citationIndexes?.join(",") ?? "";
  const content = useMemo(() => {
    const indexes = new Set(citationIndexes ?? []);
    // Headings sit below the message's own (h2): "#" becomes h3, and no level is skipped.
    let previousLevel = 2;
    const options: MarkdownToJSX.Options = {
      disableParsingRawHTML: true,
      optimizeForStreaming: streaming,
      wrapper: Fragment,
      forceWrapper: true,
      overrides: OVERRIDES,
      sanitizer,
      renderRule(next, node, renderChildren, state) {
        if (node.type === RuleType.heading) {
          const level = Math.min(6, node.level + 2, previousLevel + 1);
          previousLevel = level;
          const Tag = `h${level}` as "h3";
          // No id: the same heading in two answers would give duplicate ids.
          return (
            <Tag key={state.key} className="md-heading">
              {renderChildren(node.children, state)}
            </Tag>
          );
        }
        if (
          indexes.size > 0 &&
          renderMarker &&
          node.type === RuleType.text &&
          !state.inAnchor &&
          node.text.includes("[")
        ) {
          const parts = node.text.split(CITATION_MARKER);
          if (parts.length === 1) return next();
          return (
            <Fragment key={state.key}>
              {parts.map((part, i) => {
                const match = /^\[(\d+)\]$/.exec(part);
                const n = match ? Number(match[1]) : NaN;
                return match && indexes.has(n) ? renderMarker(n, `m${i}`) : part;
              })}
            </Fragment>
          );
        }
        return next();
      },
    };
    return compiler(text, options);
    // citationIndexes is compared by value (indexKey), not by array identity.
  }, [text, streaming, indexKey, renderMarker]);

  return <div className="markdown">{content}</div>;
});
