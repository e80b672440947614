import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { ApiClient } from "./api/client";
import { Gate } from "./Gate";
import { FakeServer, json, problem } from "./test/fakeApi";

const session = { token: "tok", session_id: "s1", nickname: "Ana", expires_at: "2099-01-01T00:00:00Z" };

function setup(server: FakeServer) {
  const onSession = vi.fn();
  render(<Gate api={new ApiClient("/api", () => null, server.fetch)} onSession={onSession} />);
  return { onSession, user: userEvent.setup() };
}

describe("Gate", () => {
  it("starts a session with the trimmed nickname", async () => {
    const server = new FakeServer().on("POST", "/api/session", json(201, session));
    const { onSession, user } = setup(server);
    await user.type(screen.getByLabelText("Nickname"), "  Ana ");
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(onSession).toHaveBeenCalledWith(session);
    expect(server.requests[0].body).toEqual({ nickname: "Ana" });
  });

  it.each([
    ["", "Nickname must not be empty"],
    ["   ", "Nickname must not be empty"],
    ["a".repeat(41), "Nickname must be at most 40 characters (got 41)"],
    ["<script>", "Nickname may contain only letters, digits, spaces and - _ . ' (found \"<\")"],
  ])("refuses %j with the API's rule and sends nothing", async (input, message) => {
    const server = new FakeServer();
    const { onSession, user } = setup(server);
    if (input) await user.type(screen.getByLabelText("Nickname"), input);
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(await screen.findByRole("alert")).toHaveTextContent(message);
    expect(screen.getByLabelText("Nickname")).toHaveAttribute("aria-invalid", "true");
    expect(server.requests).toHaveLength(0);
    expect(onSession).not.toHaveBeenCalled();
  });

  it("accepts letters of any script, digits and - _ . '", async () => {
    const server = new FakeServer().on("POST", "/api/session", json(201, { ...session, nickname: "José O'Brien-李 2.0_x" }));
    const { onSession, user } = setup(server);
    await user.type(screen.getByLabelText("Nickname"), "José O'Brien-李 2.0_x");
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(onSession).toHaveBeenCalled();
  });

  it("shows the server's field message when it disagrees", async () => {
    const server = new FakeServer().on(
      "POST",
      "/api/session",
      problem(400, "nickname: nickname may contain only letters (found '\u{200b}')", { field: "nickname", rule: "characters" }),
    );
    const { onSession, user } = setup(server);
    await user.type(screen.getByLabelText("Nickname"), "Ana");
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("nickname may contain only letters");
    expect(onSession).not.toHaveBeenCalled();
  });

  it("explains a rate limit with the wait time", async () => {
    const server = new FakeServer().on("POST", "/api/session", problem(429, "slow down", {}, { "Retry-After": "17" }));
    const { user } = setup(server);
    await user.type(screen.getByLabelText("Nickname"), "Ana");
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Too many requests. Try again in 17 seconds.");
  });

  it("says when the server cannot be reached", async () => {
    const failing: typeof fetch = () => Promise.reject(new TypeError("Failed to fetch"));
    const onSession = vi.fn();
    render(<Gate api={new ApiClient("/api", () => null, failing)} onSession={onSession} />);
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Nickname"), "Ana");
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Could not reach the FlowChat server");
  });

  it("shows the request id of a server error", async () => {
    const server = new FakeServer().on("POST", "/api/session", problem(500, "internal"));
    const { user } = setup(server);
    await user.type(screen.getByLabelText("Nickname"), "Ana");
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("request id req-123");
  });
});
