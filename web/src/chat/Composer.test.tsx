import { act, fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError } from "../api/errors";
import { Composer, type SendFailure } from "./Composer";

/** The page's side of the composer: the send call and the failure it reports. */
function Harness({ send, initialFailure = null }: { send: (text: string) => Promise<void>; initialFailure?: SendFailure | null }) {
  const [sending, setSending] = useState(false);
  const [failure, setFailure] = useState<SendFailure | null>(initialFailure);
  return (
    <Composer
      sending={sending}
      failure={failure}
      onCooldownEnd={() => setFailure(null)}
      onSend={async (text) => {
        setSending(true);
        setFailure(null);
        try {
          await send(text);
          return true;
        } catch (error) {
          setFailure({ error, at: Date.now() });
          return false;
        } finally {
          setSending(false);
        }
      }}
    />
  );
}

const textbox = () => screen.getByRole("textbox", { name: "Message" });
const sendButton = () => screen.getByRole("button", { name: /^Send/ });

afterEach(() => {
  vi.useRealTimers();
});

describe("Composer", () => {
  it("sends on Enter, then clears the draft and keeps focus", async () => {
    const send = vi.fn(async () => {});
    const user = userEvent.setup();
    render(<Harness send={send} />);
    await user.type(textbox(), "  Hello there  {Enter}");
    expect(send).toHaveBeenCalledWith("Hello there");
    expect(textbox()).toHaveValue("");
    expect(textbox()).toHaveFocus();
  });

  it("inserts a newline on Shift+Enter without sending", async () => {
    const send = vi.fn(async () => {});
    const user = userEvent.setup();
    render(<Harness send={send} />);
    await user.type(textbox(), "line one{Shift>}{Enter}{/Shift}line two");
    expect(send).not.toHaveBeenCalled();
    expect(textbox()).toHaveValue("line one\nline two");
    await user.click(sendButton());
    expect(send).toHaveBeenCalledWith("line one\nline two");
  });

  it("does not send while an IME composition is under way", () => {
    const send = vi.fn(async () => {});
    render(<Harness send={send} />);
    fireEvent.change(textbox(), { target: { value: "にほん" } });
    fireEvent.keyDown(textbox(), { key: "Enter", isComposing: true });
    expect(send).not.toHaveBeenCalled();
  });

  it("does nothing for an empty message", async () => {
    const send = vi.fn(async () => {});
    const user = userEvent.setup();
    render(<Harness send={send} />);
    await user.type(textbox(), "   {Enter}");
    expect(send).not.toHaveBeenCalled();
  });

  it("counts characters, warns near the limit and blocks sending over it", async () => {
    const send = vi.fn(async () => {});
    const user = userEvent.setup();
    render(<Harness send={send} />);
    const counter = () => screen.getByText(/\/ 4000/);
    expect(counter()).toHaveTextContent("0 / 4000");
    expect(textbox()).toHaveAttribute("aria-describedby", expect.stringContaining(counter().id));

    await user.type(textbox(), "héllo 👋");
    expect(counter()).toHaveTextContent("7 / 4000");

    fireEvent.change(textbox(), { target: { value: "a".repeat(3700) } });
    expect(counter()).toHaveTextContent("3700 / 4000");
    expect(counter()).toHaveClass("is-near");

    fireEvent.change(textbox(), { target: { value: "a".repeat(4001) } });
    expect(counter()).toHaveTextContent("4001 / 4000");
    expect(counter()).toHaveClass("is-over");
    expect(textbox()).toHaveAttribute("aria-invalid", "true");
    expect(sendButton()).toBeDisabled();

    fireEvent.keyDown(textbox(), { key: "Enter" });
    expect(send).not.toHaveBeenCalled();
    expect(await screen.findByRole("alert")).toHaveTextContent("Message must be at most 4000 characters (got 4001).");
  });

  it("is disabled while the message is being sent, keeping the draft", async () => {
    let finish!: () => void;
    const send = vi.fn(() => new Promise<void>((resolve) => (finish = resolve)));
    const user = userEvent.setup();
    render(<Harness send={send} />);
    await user.type(textbox(), "Wait for it{Enter}");
    expect(sendButton()).toBeDisabled();
    expect(sendButton()).toHaveTextContent("Sending…");
    expect(textbox()).toHaveAttribute("readonly");
    expect(textbox()).toHaveValue("Wait for it");

    // A second Enter while sending does not send twice.
    fireEvent.keyDown(textbox(), { key: "Enter" });
    expect(send).toHaveBeenCalledTimes(1);

    await act(async () => finish());
    expect(textbox()).not.toHaveAttribute("readonly");
    expect(textbox()).toHaveValue("");
  });

  it("keeps the draft and shows the error when sending fails", async () => {
    const send = vi.fn(async () => {
      throw new ApiError({ kind: "server", status: 500, message: "boom", requestId: "abc123" });
    });
    const user = userEvent.setup();
    render(<Harness send={send} />);
    await user.type(textbox(), "Keep me{Enter}");
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "The server had a problem (request id abc123). Try again; if it keeps happening, report that id.",
    );
    expect(textbox()).toHaveValue("Keep me");
    expect(sendButton()).toBeEnabled();
  });

  it("says so when offline", async () => {
    const onLine = vi.spyOn(navigator, "onLine", "get").mockReturnValue(false);
    const send = vi.fn(async () => {
      throw new ApiError({ kind: "offline", status: 0, message: "Could not reach the server (fetch failed)." });
    });
    const user = userEvent.setup();
    render(<Harness send={send} />);
    await user.type(textbox(), "Hello?{Enter}");
    expect(await screen.findByRole("alert")).toHaveTextContent("You are offline.");
    expect(textbox()).toHaveValue("Hello?");
    onLine.mockRestore();
  });

  it("shows the rate-limit wait and counts down before Send works again", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const send = vi.fn(async () => {
      throw new ApiError({ kind: "rate-limited", status: 429, message: "slow down", retryAfterSeconds: 3 });
    });
    const user = userEvent.setup({ advanceTimers: vi.advanceTimersByTime });
    render(<Harness send={send} />);
    await user.type(textbox(), "Again{Enter}");

    expect(await screen.findByRole("alert")).toHaveTextContent("Too many requests. Try again in 3 seconds.");
    expect(screen.getByRole("timer")).toHaveTextContent("Try again in 3 seconds.");
    expect(sendButton()).toBeDisabled();
    expect(textbox()).toHaveValue("Again");

    await act(async () => void vi.advanceTimersByTime(1000));
    expect(screen.getByRole("timer")).toHaveTextContent("Try again in 2 seconds.");
    await act(async () => void vi.advanceTimersByTime(1000));
    expect(screen.getByRole("timer")).toHaveTextContent("Try again in 1 second.");
    fireEvent.keyDown(textbox(), { key: "Enter" });
    expect(send).toHaveBeenCalledTimes(1);

    await act(async () => void vi.advanceTimersByTime(1000));
    expect(screen.queryByRole("timer")).not.toBeInTheDocument();
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
    expect(sendButton()).toBeEnabled();
  });
});
