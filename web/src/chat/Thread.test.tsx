import { render, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { ApiError } from "../api/errors";
import { Thread } from "./Thread";
import type { ViewMessage } from "./types";

const user = (content: string, key = "u1"): ViewMessage => ({ key, role: "user", content });
const answer = (content: string, extra: Partial<ViewMessage> = {}): ViewMessage => ({
  key: "a1",
  role: "assistant",
  content,
  phase: "done",
  citations: [],
  ...extra,
});

function renderAnswer(content: string) {
  render(<Thread messages={[user("q"), answer(content)]} loading={false} />);
  return screen.getByRole("article", { name: "FlowChat" });
}

describe("Thread", () => {
  it("renders the person's and FlowChat's messages in a log", () => {
    render(<Thread messages={[user("What is the policy?"), answer("It is **generous**.")]} loading={false} />);
    const region = screen.getByRole("region", { name: "Messages" });
    const log = within(region).getByRole("log");
    expect(log).toHaveAttribute("aria-busy", "false");
    const [mine, theirs] = within(log).getAllByRole("article");
    expect(mine).toHaveAccessibleName("You");
    expect(mine).toHaveTextContent("What is the policy?");
    expect(theirs).toHaveAccessibleName("FlowChat");
    expect(within(theirs).getByText("generous").tagName).toBe("STRONG");
  });

  it("keeps a user's markdown and HTML as typed", () => {
    render(<Thread messages={[user("**not bold** <b>nor this</b>")]} loading={false} />);
    expect(screen.getByRole("article", { name: "You" })).toHaveTextContent("**not bold** <b>nor this</b>");
    expect(document.querySelector("b, strong")).toBeNull();
  });

  it("renders raw HTML in an answer as text, never as elements", () => {
    const article = renderAnswer('Look: <img src=x onerror=alert(1)> and <script>alert("x")</script>\n\n<iframe src="https://evil.example"></iframe>');
    expect(article).toHaveTextContent("<img src=x onerror=alert(1)>");
    expect(article).toHaveTextContent('<script>alert("x")</script>');
    expect(article.querySelector("img, script, iframe")).toBeNull();
    expect(document.querySelector("img, script, iframe, [onerror]")).toBeNull();
  });

  it("does not turn javascript: URLs into links, and opens safe links in a new tab", () => {
    const article = renderAnswer(
      "[click me](javascript:alert(1)) [data](data:text/html,hi) [docs](https://example.com/docs) [mail](mailto:a@example.com)",
    );
    expect(article).toHaveTextContent("click me");
    for (const anchor of article.querySelectorAll("a")) {
      expect(anchor.getAttribute("href")).toMatch(/^(https:|mailto:)/);
    }
    expect(within(article).queryByRole("link", { name: /click me/ })).toBeNull();
    expect(within(article).queryByRole("link", { name: /data/ })).toBeNull();
    const docs = within(article).getByRole("link", { name: /docs/ });
    expect(docs).toHaveAttribute("href", "https://example.com/docs");
    expect(docs).toHaveAttribute("target", "_blank");
    expect(docs).toHaveAttribute("rel", "noopener noreferrer");
    expect(within(article).getByRole("link", { name: /mail/ })).toHaveAttribute("href", "mailto:a@example.com");
  });

  it("does not load images from answers", () => {
    const article = renderAnswer("![tracker](https://evil.example/pixel.png)");
    expect(article.querySelector("img")).toBeNull();
    expect(within(article).getByRole("link", { name: /Image: tracker/ })).toHaveAttribute("href", "https://evil.example/pixel.png");
  });

  it("renders fenced code in pre/code and inline code in code", () => {
    const article = renderAnswer("Run `npm test` then:\n\n```sh\necho <b>hi</b> && rm -rf /tmp/x\n```");
    const pre = article.querySelector("pre");
    expect(pre).not.toBeNull();
    expect(pre!.querySelector("code")).toHaveTextContent("echo <b>hi</b> && rm -rf /tmp/x");
    expect(pre).toHaveAttribute("tabindex", "0");
    expect(within(article).getByText("npm test").tagName).toBe("CODE");
    expect(article.querySelector("b")).toBeNull();
  });

  it("shows Thinking… while waiting and the partial text while streaming", () => {
    const { rerender } = render(
      <Thread messages={[user("q"), answer("", { phase: "waiting", status: "queued" })]} loading={false} />,
    );
    const log = screen.getByRole("log");
    expect(log).toHaveAttribute("aria-busy", "true");
    expect(screen.getByRole("article", { name: "FlowChat" })).toHaveTextContent("Thinking…");

    rerender(<Thread messages={[user("q"), answer("The answer so far is **part", { phase: "streaming" })]} loading={false} />);
    const article = screen.getByRole("article", { name: "FlowChat" });
    expect(article).toHaveTextContent("The answer so far is");
    expect(article).not.toHaveTextContent("Thinking…");
    expect(log).toHaveAttribute("aria-busy", "true");

    rerender(<Thread messages={[user("q"), answer("The answer is **complete**.")]} loading={false} announcement="Answer ready." />);
    expect(log).toHaveAttribute("aria-busy", "false");
    expect(screen.getByRole("status")).toHaveTextContent("Answer ready.");
  });

  it("says when an attempt failed and is being retried", () => {
    render(
      <Thread
        messages={[user("q"), answer("", { phase: "waiting", status: "queued", attemptError: "model overloaded" })]}
        loading={false}
      />,
    );
    expect(screen.getByRole("article", { name: "FlowChat" })).toHaveTextContent("That attempt failed; trying again…");
  });

  it("shows a failed answer with Try again", () => {
    render(
      <Thread
        messages={[user("q"), answer("", { phase: "failed", error: "FlowChat could not answer this question.", question: "q" })]}
        loading={false}
        onRetryAnswer={() => {}}
      />,
    );
    const article = screen.getByRole("article", { name: "FlowChat" });
    expect(article).toHaveTextContent("FlowChat could not answer this question.");
    expect(within(article).getByRole("button", { name: "Try again" })).toBeInTheDocument();
  });

  it("welcomes a new chat", () => {
    render(<Thread messages={[]} loading={false} />);
    expect(screen.getByRole("heading", { name: "Ask about your documents" })).toBeInTheDocument();
    expect(screen.getByText(/Upload a document/)).toBeInTheDocument();
    expect(screen.queryByRole("log")).toBeNull();
  });

  it("shows that a conversation is loading", () => {
    render(<Thread messages={[]} loading />);
    expect(screen.getByText("Loading conversation…")).toBeInTheDocument();
    expect(screen.queryByRole("heading", { name: "Ask about your documents" })).toBeNull();
  });

  it("shows a load error with Retry", () => {
    render(
      <Thread
        messages={[]}
        loading={false}
        error={new ApiError({ kind: "unavailable", status: 503, message: "down" })}
        onRetryLoad={() => {}}
      />,
    );
    const alert = screen.getByRole("alert");
    expect(alert).toHaveTextContent("The service is temporarily unavailable.");
    expect(within(alert).getByRole("button", { name: "Retry" })).toBeInTheDocument();
  });

  it("places answer headings below the message heading without skipping levels or adding ids", () => {
    const article = renderAnswer("## Overview\n\ntext\n\n#### Detail\n\nmore\n\n# Top");
    const headings = within(article).getAllByRole("heading");
    expect(headings.map((h) => `${h.tagName}:${h.textContent}`)).toEqual([
      "H2:FlowChat said:",
      "H3:Overview",
      "H4:Detail",
      "H3:Top",
    ]);
    expect(article.querySelector("[id]")).toBeNull();
  });
});
