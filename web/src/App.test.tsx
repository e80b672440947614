import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { App } from "./App";
import { loadSession, saveSession } from "./session";
import { FakeServer, json, problem } from "./test/fakeApi";

const session = { token: "tok", session_id: "s1", nickname: "Ana", expires_at: "2099-01-01T00:00:00Z" };

describe("App", () => {
  let server: FakeServer;
  beforeEach(() => {
    server = new FakeServer()
      .on("GET", "/api/conversations", { conversations: [] })
      .on("GET", "/api/documents", { documents: [] })
      .on("POST", "/api/session", json(201, session));
    vi.stubGlobal("fetch", server.fetch);
  });
  afterEach(() => vi.unstubAllGlobals());

  it("keeps the session in local storage across reloads", async () => {
    const user = userEvent.setup();
    const first = render(<App />);
    await user.type(screen.getByLabelText("Nickname"), "Ana");
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(await screen.findByText("Ana")).toBeInTheDocument();
    expect(loadSession()?.token).toBe("tok");
    first.unmount();
    render(<App />);
    expect(screen.queryByLabelText("Nickname")).not.toBeInTheDocument();
    expect(screen.getByText("Ana")).toBeInTheDocument();
  });

  it("ignores an expired stored session", () => {
    saveSession({ ...session, expires_at: "2000-01-01T00:00:00Z" });
    render(<App />);
    expect(screen.getByLabelText("Nickname")).toBeInTheDocument();
  });

  it("changes nickname only after confirmation", async () => {
    saveSession(session);
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
    saveSession(session);
    server.on("GET", "/api/conversations", problem(401, "token expired"));
    render(<App />);
    expect(await screen.findByText(/Your session expired/)).toBeInTheDocument();
    expect(screen.getByLabelText("Nickname")).toBeInTheDocument();
  });
});
