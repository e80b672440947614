import { act, render, screen, waitFor, within } from "@testing-library/react";
import { StrictMode } from "react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { ChatPage } from "./ChatPage";
import { OPEN_KEY, PENDING_KEY } from "./pending";
import { citation, connectionLost, FakeNetwork, problem } from "../test/fakeNetwork";

function setup(network = new FakeNetwork()) {
  const onUnauthorized = vi.fn();
  const api = network.client();
  // StrictMode as in main.tsx: effects run twice, so following must survive an abort and restart.
  const utils = render(
    <StrictMode>
      <ChatPage api={api} onUnauthorized={onUnauthorized} />
    </StrictMode>,
  );
  return { network, api, onUnauthorized, user: userEvent.setup(), ...utils };
}

const nav = () => screen.getByRole("navigation", { name: "Conversations" });
const messages = () => screen.getByRole("region", { name: "Messages" });
const textbox = () => screen.getByRole("textbox", { name: "Message" });

describe("ChatPage", () => {
  it("sends a message, streams the answer and shows its sources; the new conversation appears at once", async () => {
    const { network, user } = setup();
    expect(await within(nav()).findByText("No conversations yet")).toBeInTheDocument();
    expect(screen.getByRole("heading", { name: "Ask about your documents" })).toBeInTheDocument();

    await user.type(textbox(), "How much is the chair allowance?{Enter}");

    // The question and a waiting answer show as soon as the server took the message.
    const log = await within(messages()).findByRole("log");
    expect(within(log).getByRole("article", { name: "You" })).toHaveTextContent("How much is the chair allowance?");
    const answer = within(log).getByRole("article", { name: "FlowChat" });
    expect(answer).toHaveTextContent("Thinking…");
    expect(log).toHaveAttribute("aria-busy", "true");
    expect(textbox()).toHaveValue("");
    expect(textbox()).toHaveFocus();

    // The conversation is listed with its title without a reload.
    const item = await within(nav()).findByRole("button", { name: /^How much is the chair allowance\?/ });
    expect(item).toHaveAttribute("aria-current", "page");

    // Pending job remembered for a reload.
    const pending = JSON.parse(localStorage.getItem(PENDING_KEY) ?? "{}");
    const [conversationId] = Object.keys(pending);
    const jobId = pending[conversationId].job_id as string;
    expect(pending[conversationId].question).toBe("How much is the chair allowance?");

    await waitFor(() => expect(network.stream(jobId)).toBeDefined());
    act(() => network.partial(jobId, "The allowance is"));
    await waitFor(() => expect(answer).toHaveTextContent("The allowance is"));
    expect(answer).not.toHaveTextContent("Thinking…");

    act(() => {
      network.answer(jobId, "The allowance is 150 euros [1].", [
        citation(1, "remote-work-policy.md", { heading: "Remote work > Equipment" }),
      ]);
    });
    await waitFor(() => expect(within(answer).getByText("Sources")).toBeInTheDocument());
    expect(answer).toHaveTextContent("The allowance is 150 euros [1].");
    expect(within(answer).getByText(/remote-work-policy\.md · Remote work > Equipment/)).toBeInTheDocument();
    expect(log).toHaveAttribute("aria-busy", "false");
    expect(screen.getByRole("status", { hidden: false, name: "" })).toHaveTextContent("Answer ready.");
    expect(localStorage.getItem(PENDING_KEY)).toBeNull();
  });

  it("lists conversations most recent first and opens one with its citations", async () => {
    const network = new FakeNetwork();
    network.addConversation("Older chat", [{ role: "user", content: "old question" }]);
    network.addConversation("Newer chat", [
      { role: "user", content: "What about laptops?", job_id: "j1" },
      {
        role: "assistant",
        content: "A laptop is provided [1].\n\nSources:\n[1] policy.md — Equipment",
        job_id: "j1",
        citations: [citation(1, "policy.md", { heading: "Equipment" })],
      },
    ]);
    const { user } = setup(network);

    const items = await within(nav()).findAllByRole("button", { name: /^(Newer|Older) chat/ });
    expect(items.map((b) => b.textContent)).toEqual([expect.stringContaining("Newer chat"), expect.stringContaining("Older chat")]);

    await user.click(items[0]);
    const answer = await within(messages()).findByRole("article", { name: "FlowChat" });
    expect(answer).toHaveTextContent("A laptop is provided [1].");
    expect(answer).not.toHaveTextContent("Sources:");
    expect(within(answer).getByText(/policy\.md · Equipment/)).toBeInTheDocument();
    expect(items[0]).toHaveAttribute("aria-current", "page");
    expect(screen.getByRole("heading", { level: 1 })).toHaveTextContent("Newer chat");
    expect(localStorage.getItem(OPEN_KEY)).toBe(network.conversations[1].id);
  });

  it("resumes following a pending answer after a reload", async () => {
    const network = new FakeNetwork();
    const conversation = network.addConversation("Pending one", []);
    // As if the page was reloaded right after sending.
    const api = network.client();
    const submitted = await api.sendMessage("Where is the office?", conversation.id);
    localStorage.setItem(PENDING_KEY, JSON.stringify({ [conversation.id]: { job_id: submitted.job_id, question: "Where is the office?" } }));
    localStorage.setItem(OPEN_KEY, conversation.id);

    setup(network);
    const answer = await within(messages()).findByRole("article", { name: "FlowChat" });
    expect(answer).toHaveTextContent("Thinking…");
    await waitFor(() => expect(network.stream(submitted.job_id)).toBeDefined());
    act(() => void network.answer(submitted.job_id, "In Berlin."));
    await waitFor(() => expect(answer).toHaveTextContent("In Berlin."));
    expect(localStorage.getItem(PENDING_KEY)).toBeNull();
  });

  it("stops following when switching conversations and resumes on coming back", async () => {
    const network = new FakeNetwork();
    network.addConversation("First", [{ role: "user", content: "q1" }]);
    const { user } = setup(network);
    await within(nav()).findByRole("button", { name: /^First/ });

    await user.type(textbox(), "A new question{Enter}");
    await within(messages()).findByRole("article", { name: "FlowChat" });
    const jobId = [...network.jobs.keys()][0];
    await waitFor(() => expect(network.stream(jobId)).toBeDefined());
    const firstStream = network.stream(jobId)!;

    await user.click(within(nav()).getByRole("button", { name: /^First/ }));
    await within(messages()).findByText("q1");
    await waitFor(() => expect(firstStream.closed).toBe(true));

    // The answer arrives while away; back in the conversation it is there.
    network.answer(jobId, "Here it is.");
    await user.click(within(nav()).getByRole("button", { name: /^A new question/ }));
    const answer = await within(messages()).findByRole("article", { name: "FlowChat" });
    await waitFor(() => expect(answer).toHaveTextContent("Here it is."));
    expect(localStorage.getItem(PENDING_KEY)).toBeNull();
  });

  it("shows a failed answer with Try again, which resends the question", async () => {
    const { network, user } = setup();
    await within(nav()).findByText("No conversations yet");
    await user.type(textbox(), "Break please{Enter}");
    const jobId = await waitFor(() => {
      const id = [...network.jobs.keys()][0];
      expect(network.stream(id)).toBeDefined();
      return id;
    });
    act(() => void network.fail(jobId, "the model timed out"));
    const answer = await within(messages()).findByRole("article", { name: "FlowChat" });
    await waitFor(() => expect(answer).toHaveTextContent("FlowChat could not answer this question (the model timed out)."));

    await user.click(within(answer).getByRole("button", { name: "Try again" }));
    await waitFor(() => expect(network.count("POST", "/api/chat")).toBe(2));
    const posts = network.requests.filter((r) => r.method === "POST");
    expect(posts[1].body).toEqual({ message: "Break please", conversation_id: network.conversations[0].id });
    await waitFor(() => expect(within(messages()).getAllByRole("article", { name: "You" })).toHaveLength(2));
    expect(within(messages()).getAllByRole("article", { name: "FlowChat" })).toHaveLength(1);
    expect(within(messages()).getByRole("article", { name: "FlowChat" })).toHaveTextContent("Thinking…");
  });

  it("keeps the draft and shows the wait when rate-limited", async () => {
    const network = new FakeNetwork();
    network.once("POST", "/api/chat", problem(429, { detail: "slow down" }, { "Retry-After": "7" }));
    const { user } = setup(network);
    await within(nav()).findByText("No conversations yet");
    await user.type(textbox(), "Too fast{Enter}");
    expect(await screen.findByRole("alert")).toHaveTextContent("Too many requests. Try again in 7 seconds.");
    expect(textbox()).toHaveValue("Too fast");
    expect(screen.getByRole("button", { name: "Send" })).toBeDisabled();
    expect(screen.queryByRole("log")).not.toBeInTheDocument();
  });

  it("calls onUnauthorized when the session is gone", async () => {
    const network = new FakeNetwork();
    network.signIn("Ana");
    network.expireSessions();
    const { onUnauthorized } = setup(network);
    await waitFor(() => expect(onUnauthorized).toHaveBeenCalled());
  });

  it("shows a list error with Retry", async () => {
    const network = new FakeNetwork();
    let broken = true;
    network.on("GET", "/api/conversations", () => (broken ? problem(500, { detail: "boom", request_id: "req-1" }) : undefined));
    network.addConversation("Back again");
    const { user } = setup(network);
    const alert = await within(nav()).findByRole("alert");
    expect(alert).toHaveTextContent("The server had a problem (request id req-1).");
    broken = false;
    await user.click(within(alert).getByRole("button", { name: "Retry" }));
    expect(await within(nav()).findByRole("button", { name: /^Back again/ })).toBeInTheDocument();
    expect(within(nav()).queryByRole("alert")).not.toBeInTheDocument();
  });

  it("deletes the open conversation after confirming and goes to a new chat", async () => {
    const network = new FakeNetwork();
    network.addConversation("Keep me", [{ role: "user", content: "keep" }]);
    network.addConversation("Remove me", [{ role: "user", content: "remove" }]);
    const { user } = setup(network);
    await user.click(await within(nav()).findByRole("button", { name: /^Remove me/ }));
    await within(messages()).findByText("remove");

    await user.click(within(nav()).getByRole("button", { name: 'Delete conversation "Remove me"' }));
    const dialog = screen.getByRole("dialog", { name: "Delete conversation?" });
    await user.click(within(dialog).getByRole("button", { name: "Delete" }));

    await waitFor(() => expect(within(nav()).queryByRole("button", { name: /^Remove me/ })).not.toBeInTheDocument());
    expect(network.count("DELETE", /^\/api\/conversations\//)).toBe(1);
    expect(screen.getByRole("heading", { level: 1 })).toHaveTextContent("New chat");
    expect(screen.getByRole("heading", { name: "Ask about your documents" })).toBeInTheDocument();
    expect(within(nav()).getByRole("button", { name: /^Keep me/ })).toBeInTheDocument();
  });

  it("refreshes the list when the window regains focus", async () => {
    const { network } = setup();
    await within(nav()).findByText("No conversations yet");
    network.addConversation("Made in another tab");
    const now = Date.now();
    const spy = vi.spyOn(Date, "now").mockReturnValue(now + 5000);
    act(() => void window.dispatchEvent(new Event("focus")));
    spy.mockRestore();
    expect(await within(nav()).findByRole("button", { name: /^Made in another tab/ })).toBeInTheDocument();
  });

  it("toggles the conversation list as an overlay on narrow screens", async () => {
    const network = new FakeNetwork();
    network.addConversation("Somewhere");
    const { user } = setup(network);
    const toggle = screen.getByRole("button", { name: "Conversations" });
    expect(toggle).toHaveAttribute("aria-expanded", "false");
    expect(toggle).toHaveAttribute("aria-controls", nav().id);
    await user.click(toggle);
    expect(toggle).toHaveAttribute("aria-expanded", "true");
    expect(nav()).toHaveClass("is-open");
    await user.click(await within(nav()).findByRole("button", { name: /^Somewhere/ }));
    expect(toggle).toHaveAttribute("aria-expanded", "false");
    expect(nav()).not.toHaveClass("is-open");
  });

  it("offers Reconnect when the connection drops while following, and resumes", async () => {
    const network = new FakeNetwork();
    let down = true;
    network.on("GET", /^\/api\/chat\/[^/]+(\/events|\?wait=)/, () => (down ? connectionLost() : undefined));
    const { user } = setup(network);
    await within(nav()).findByText("No conversations yet");
    await user.type(textbox(), "Are you there?{Enter}");
    const answer = await within(messages()).findByRole("article", { name: "FlowChat" });
    await waitFor(() => expect(answer).toHaveTextContent("Lost the connection while the answer was being written."));
    const jobId = [...network.jobs.keys()][0];
    expect(JSON.parse(localStorage.getItem(PENDING_KEY)!)).toEqual({
      [network.conversations[0].id]: { job_id: jobId, question: "Are you there?" },
    });

    down = false;
    await user.click(within(answer).getByRole("button", { name: "Reconnect" }));
    await waitFor(() => expect(network.stream(jobId)).toBeDefined());
    act(() => void network.answer(jobId, "Yes."));
    await waitFor(() => expect(answer).toHaveTextContent("Yes."));
  });

  it("refreshes the list every 30 seconds while visible", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      const { network } = setup();
      await within(nav()).findByText("No conversations yet");
      const before = network.count("GET", "/api/conversations");
      network.addConversation("Appeared later");
      await act(async () => void vi.advanceTimersByTime(29_000));
      expect(network.count("GET", "/api/conversations")).toBe(before);
      await act(async () => void vi.advanceTimersByTime(1_000));
      expect(await within(nav()).findByRole("button", { name: /^Appeared later/ })).toBeInTheDocument();
      expect(network.count("GET", "/api/conversations")).toBe(before + 1);
    } finally {
      vi.useRealTimers();
    }
  });
});
