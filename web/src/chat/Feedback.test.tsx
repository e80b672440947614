import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { ApiError } from "../api/errors";
import { ChatPage } from "./ChatPage";
import { OPEN_KEY } from "./pending";
import { Thread } from "./Thread";
import { citation, FakeNetwork, problem } from "../test/fakeNetwork";
import type { ViewMessage } from "./types";

function renderAnswer(onFeedback = vi.fn().mockResolvedValue(undefined), extra: Partial<ViewMessage> = {}) {
  const messages: ViewMessage[] = [
    { key: "u", role: "user", content: "q" },
    { key: "a", role: "assistant", content: "150 euros [1].", citations: [citation(1, "policy.md")], phase: "done", jobId: "j1", ...extra },
  ];
  render(<Thread messages={messages} loading={false} onFeedback={onFeedback} />);
  return { article: screen.getByRole("article", { name: "FlowChat" }), onFeedback, user: userEvent.setup() };
}

describe("Feedback", () => {
  it("saves 👍 at once and shows it pressed; 👎 changes it", async () => {
    const { article, onFeedback, user } = renderAnswer();
    const up = within(article).getByRole("button", { name: "Helpful" });
    const down = within(article).getByRole("button", { name: "Not helpful" });
    expect(up).toHaveAttribute("aria-pressed", "false");
    expect(down).toHaveAttribute("aria-pressed", "false");

    await user.click(up);
    expect(onFeedback).toHaveBeenLastCalledWith("j1", "up", undefined);
    await waitFor(() => expect(up).toHaveAttribute("aria-pressed", "true"));
    expect(within(article).getByRole("status")).toHaveTextContent("Thanks for your feedback.");
    expect(within(article).queryByRole("textbox")).toBeNull();

    await user.click(down);
    expect(onFeedback).toHaveBeenLastCalledWith("j1", "down", undefined);
    await waitFor(() => expect(down).toHaveAttribute("aria-pressed", "true"));
    expect(up).toHaveAttribute("aria-pressed", "false");
  });

  it("offers an optional comment after 👎 and sends it", async () => {
    const { article, onFeedback, user } = renderAnswer();
    await user.click(within(article).getByRole("button", { name: "Not helpful" }));
    const box = await within(article).findByRole("textbox", { name: /What was wrong/ });
    const send = within(article).getByRole("button", { name: "Send" });
    expect(send).toBeDisabled();
    await user.type(box, "  The amount is out of date. ");
    await user.click(send);
    expect(onFeedback).toHaveBeenLastCalledWith("j1", "down", "  The amount is out of date. ");
    await waitFor(() => expect(within(article).getByRole("status")).toHaveTextContent("Thanks, your comment was sent."));
  });

  it("shows the saved state it was given", () => {
    const { article } = renderAnswer(undefined, { feedback: { rating: "down", comment: "Too vague." } });
    expect(within(article).getByRole("button", { name: "Not helpful" })).toHaveAttribute("aria-pressed", "true");
    expect(within(article).getByRole("textbox", { name: /What was wrong/ })).toHaveValue("Too vague.");
  });

  it("says in a sentence when saving failed, and keeps the old state", async () => {
    const failing = vi.fn().mockRejectedValue(new ApiError({ kind: "unavailable", status: 503, message: "x" }));
    const { article, user } = renderAnswer(failing);
    const up = within(article).getByRole("button", { name: "Helpful" });
    await user.click(up);
    expect(await within(article).findByRole("alert")).toHaveTextContent(
      "Your feedback was not saved. The service is temporarily unavailable. Try again in a few seconds.",
    );
    expect(up).toHaveAttribute("aria-pressed", "false");
  });

  it("shows no buttons on answers still being written", () => {
    const messages: ViewMessage[] = [{ key: "a", role: "assistant", content: "The allow", phase: "streaming", jobId: "j1" }];
    render(<Thread messages={messages} loading={false} onFeedback={vi.fn()} />);
    expect(screen.queryByRole("button", { name: "Helpful" })).toBeNull();
  });

  it("goes to the API and comes back after a reload", async () => {
    const network = new FakeNetwork();
    const conversation = network.addConversation("Chairs", [
      { role: "user", content: "Chair allowance?", job_id: "j1" },
      { role: "assistant", content: "150 euros [1].", job_id: "j1", citations: [citation(1, "policy.md")] },
    ]);
    localStorage.setItem(OPEN_KEY, conversation.id);
    const first = render(<ChatPage api={network.client()} onUnauthorized={vi.fn()} />);
    const user = userEvent.setup();
    const answer = await screen.findByRole("article", { name: "FlowChat" });
    await user.click(within(answer).getByRole("button", { name: "Not helpful" }));
    await user.type(await within(answer).findByRole("textbox", { name: /What was wrong/ }), "Out of date.");
    await user.click(within(answer).getByRole("button", { name: "Send" }));
    await waitFor(() => expect(network.conversations[0].messages[1].feedback).toEqual({ rating: "down", comment: "Out of date." }));
    const puts = network.requests.filter((r) => r.method === "PUT");
    expect(puts.map((r) => [r.path, r.body])).toEqual([
      ["/api/chat/j1/feedback", { rating: "down" }],
      ["/api/chat/j1/feedback", { rating: "down", comment: "Out of date." }],
    ]);
    first.unmount();

    render(<ChatPage api={network.client()} onUnauthorized={vi.fn()} />);
    const again = await screen.findByRole("article", { name: "FlowChat" });
    expect(within(again).getByRole("button", { name: "Not helpful" })).toHaveAttribute("aria-pressed", "true");
    expect(within(again).getByRole("button", { name: "Helpful" })).toHaveAttribute("aria-pressed", "false");
  });

  it("reports a refused save from the API", async () => {
    const network = new FakeNetwork();
    const conversation = network.addConversation("Chairs", [
      { role: "user", content: "Chair allowance?", job_id: "j1" },
      { role: "assistant", content: "150 euros.", job_id: "j1" },
    ]);
    network.once("PUT", "/api/chat/j1/feedback", problem(404, { detail: "no such answer" }));
    localStorage.setItem(OPEN_KEY, conversation.id);
    render(<ChatPage api={network.client()} onUnauthorized={vi.fn()} />);
    const user = userEvent.setup();
    const answer = await screen.findByRole("article", { name: "FlowChat" });
    await user.click(within(answer).getByRole("button", { name: "Helpful" }));
    expect(await within(answer).findByRole("alert")).toHaveTextContent(/^Your feedback was not saved\. That item no longer exists/);
  });
});
