import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { App } from "./App";
import { loadSession, saveSession } from "./session";
import { FakeNetwork } from "./test/fakeNetwork";

describe("App", () => {
  // The App builds its own ApiClient on the browser's fetch and XMLHttpRequest.
  let network: FakeNetwork;
  beforeEach(() => {
    network = new FakeNetwork();
    network.install();
  });
  afterEach(() => vi.unstubAllGlobals());

  it("keeps the session in local storage across reloads", async () => {
    const user = userEvent.setup();
    const first = render(<App />);
    await user.type(screen.getByLabelText("Nickname"), "Ana");
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(await screen.findByText("Ana")).toBeInTheDocument();
    expect(loadSession()?.token).toBe(network.sessions[0].token);
    first.unmount();
    render(<App />);
    expect(screen.queryByLabelText("Nickname")).not.toBeInTheDocument();
    expect(screen.getByText("Ana")).toBeInTheDocument();
  });

  it("ignores an expired stored session", () => {
    saveSession({ ...network.signIn("Ana"), expires_at: "2000-01-01T00:00:00Z" });
    render(<App />);
    expect(screen.getByLabelText("Nickname")).toBeInTheDocument();
  });

  it("changes nickname only after confirmation", async () => {
    saveSession(network.signIn("Ana"));
    const user = userEvent.setup();
    render(<App />);
    await user.click(screen.getByRole("button", { name: "Change nickname" }));
    const dialog = screen.getByRole("dialog", { name: "Change nickname?" });
    await user.click(within(dialog).getByRole("button", { name: "Cancel" }));
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
    expect(screen.getByText("Ana")).toBeInTheDocument();

    await user.click(screen.getByRole("button", { name: "Change nickname" }));
    await user.keyboard("{Escape}");
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();

    await user.click(screen.getByRole("button", { name: "Change nickname" }));
    await user.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Start a new session" }));
    expect(screen.getByLabelText("Nickname")).toBeInTheDocument();
    expect(loadSession()).toBeNull();
  });

  it("returns to the gate with a notice when the session is refused", async () => {
    saveSession(network.signIn("Ana"));
    network.expireSessions();
    render(<App />);
    expect(await screen.findByText(/Your session expired/)).toBeInTheDocument();
    expect(screen.getByLabelText("Nickname")).toBeInTheDocument();
  });
});
