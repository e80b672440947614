import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { citationLabel, stripSourcesBlock } from "./answerText";
import { Thread } from "./Thread";
import { citation } from "../test/fakeNetwork";
import type { ViewMessage } from "./types";

const EXTRACTIVE =
  "No language model is configured, so this answer only quotes the documents. The passages that best match your question:\n\n" +
  "> Employees may claim a one-time allowance of 150 euros for a desk chair. [1]\n\n" +
  "> Laptops are provided by IT. [2]\n\n" +
  "Sources:\n[1] remote-work-policy.md — Remote work > Equipment\n[2] handbook.pdf, page 2";

function renderAnswer(content: string, citations = [citation(1, "handbook.pdf", { page: 2 })]) {
  const messages: ViewMessage[] = [
    { key: "u", role: "user", content: "q" },
    { key: "a", role: "assistant", content, citations, phase: "done" },
  ];
  render(<Thread messages={messages} loading={false} />);
  return screen.getByRole("article", { name: "FlowChat" });
}

describe("Citations", () => {
  it("lists sources with page or heading in the summary", () => {
    const article = renderAnswer("See [1] and [2].", [
      citation(1, "handbook.pdf", { page: 2 }),
      citation(2, "policy.md", { heading: "Remote work > Equipment" }),
    ]);
    const sources = within(article).getByRole("region", { name: "Sources" });
    const summaries = Array.from(sources.querySelectorAll("summary")).map((s) => s.textContent);
    expect(summaries).toEqual(["[1] handbook.pdf · page 2", "[2] policy.md · Remote work > Equipment"]);
  });

  it("reveals the excerpt in a blockquote when expanded", async () => {
    const user = userEvent.setup();
    const article = renderAnswer("Answer [1].");
    const details = article.querySelector("details")!;
    expect(details.open).toBe(false);
    await user.click(within(details).getByText(/handbook\.pdf · page 2/));
    expect(details.open).toBe(true);
    const quote = details.querySelector("blockquote");
    expect(quote).toHaveTextContent("Excerpt 1 from handbook.pdf.");
    expect(quote).toBeVisible();
  });

  it("turns [n] markers into links that open the cited source", async () => {
    const user = userEvent.setup();
    const article = renderAnswer("The allowance is 150 euros [1]. Unknown [7] stays text.");
    expect(article).toHaveTextContent("The allowance is 150 euros [1]. Unknown [7] stays text.");
    const marker = within(article).getByRole("link", { name: "[1]" });
    expect(within(article).queryByRole("link", { name: "[7]" })).toBeNull();
    const details = article.querySelector("details")!;
    expect(marker).toHaveAttribute("href", `#${details.id}`);

    await user.click(marker);
    expect(details.open).toBe(true);
    expect(details.querySelector("summary")).toHaveFocus();
  });

  it("strips the extractive Sources: block when structured citations are shown", () => {
    const article = renderAnswer(EXTRACTIVE, [
      citation(1, "remote-work-policy.md", { heading: "Remote work > Equipment" }),
      citation(2, "handbook.pdf", { page: 2 }),
    ]);
    expect(article).not.toHaveTextContent("Sources:");
    expect(article).not.toHaveTextContent("remote-work-policy.md — Remote work");
    expect(article).toHaveTextContent("Employees may claim a one-time allowance of 150 euros for a desk chair. [1]");
    expect(within(article).getByRole("region", { name: "Sources" })).toBeInTheDocument();
    expect(within(article).getAllByRole("link", { name: /^\[\d\]$/ })).toHaveLength(2);
  });

  it("shows no Sources section without citations, and keeps the text as written", () => {
    const article = renderAnswer("No documents matched.\n\nSources:\n[1] made-up.md", []);
    expect(within(article).queryByRole("region", { name: "Sources" })).toBeNull();
    expect(article).toHaveTextContent("Sources:");
    expect(within(article).queryByRole("link")).toBeNull();
  });
});

describe("answer text helpers", () => {
  it("strips only a trailing Sources block", () => {
    const cites = [citation(1, "a.md")];
    expect(stripSourcesBlock("Text [1]\n\nSources:\n[1] a.md", cites)).toBe("Text [1]");
    expect(stripSourcesBlock("Sources: are listed below.\n\nMore text", cites)).toBe("Sources: are listed below.\n\nMore text");
    expect(stripSourcesBlock("Text\n\nSources:\n[1] a.md", [])).toBe("Text\n\nSources:\n[1] a.md");
    // The mode decides when the server says it: a model's own list stays.
    expect(stripSourcesBlock("Text [1]\n\nSources:\n[1] a.md", cites, "extractive")).toBe("Text [1]");
    expect(stripSourcesBlock("Text [1]\n\nSources:\n[1] a.md", cites, "generative")).toBe(
      "Text [1]\n\nSources:\n[1] a.md",
    );
  });

  it("labels citations by source, heading and page", () => {
    expect(citationLabel(citation(1, "a.pdf", { page: 3 }))).toBe("a.pdf · page 3");
    expect(citationLabel(citation(1, "a.md", { heading: "X > Y" }))).toBe("a.md · X > Y");
    expect(citationLabel(citation(1, "a.txt"))).toBe("a.txt");
  });
});
