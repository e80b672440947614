import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { Gate } from "./Gate";
import { FakeNetwork, problem } from "./test/fakeNetwork";

function setup(network: FakeNetwork) {
  const onSession = vi.fn();
  // No session yet: the gate is where one starts.
  render(<Gate api={network.client(null)} onSession={onSession} />);
  return { onSession, user: userEvent.setup() };
}

describe("Gate", () => {
  it("starts a session with the trimmed nickname", async () => {
    const network = new FakeNetwork();
    const { onSession, user } = setup(network);
    await user.type(screen.getByLabelText("Nickname"), "  Ana ");
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(network.sessions).toHaveLength(1);
    expect(onSession).toHaveBeenCalledWith(network.sessions[0]);
    expect(network.requests[0].body).toEqual({ nickname: "Ana" });
  });

  it.each([
    ["", "Nickname must not be empty"],
    ["   ", "Nickname must not be empty"],
    ["a".repeat(41), "Nickname must be at most 40 characters (got 41)"],
    ["<script>", "Nickname may contain only letters, digits, spaces and - _ . ' (found \"<\")"],
  ])("refuses %j with the API's rule and sends nothing", async (input, message) => {
    const network = new FakeNetwork();
    const { onSession, user } = setup(network);
    if (input) await user.type(screen.getByLabelText("Nickname"), input);
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(await screen.findByRole("alert")).toHaveTextContent(message);
    expect(screen.getByLabelText("Nickname")).toHaveAttribute("aria-invalid", "true");
    expect(network.requests).toHaveLength(0);
    expect(onSession).not.toHaveBeenCalled();
  });

  it("accepts letters of any script, digits and - _ . '", async () => {
    const network = new FakeNetwork();
    const { onSession, user } = setup(network);
    await user.type(screen.getByLabelText("Nickname"), "José O'Brien-李 2.0_x");
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(onSession).toHaveBeenCalled();
    expect(network.requests[0].body).toEqual({ nickname: "José O'Brien-李 2.0_x" });
  });

  it("shows the server's field message when it disagrees", async () => {
    const network = new FakeNetwork().once(
      "POST",
      "/api/session",
      problem(400, { detail: "nickname: nickname may contain only letters (found '\u{200b}')", field: "nickname", rule: "characters" }),
    );
    const { onSession, user } = setup(network);
    await user.type(screen.getByLabelText("Nickname"), "Ana");
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("nickname may contain only letters");
    expect(onSession).not.toHaveBeenCalled();
  });

  it("explains a rate limit with the wait time", async () => {
    const network = new FakeNetwork().once("POST", "/api/session", problem(429, { detail: "slow down" }, { "Retry-After": "17" }));
    const { user } = setup(network);
    await user.type(screen.getByLabelText("Nickname"), "Ana");
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Too many requests. Try again in 17 seconds.");
  });

  it("says when the server cannot be reached", async () => {
    const network = new FakeNetwork();
    network.offline = true;
    const { user } = setup(network);
    await user.type(screen.getByLabelText("Nickname"), "Ana");
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Could not reach the FlowChat server");
  });

  it("shows the request id of a server error", async () => {
    const network = new FakeNetwork().once("POST", "/api/session", problem(500, { detail: "internal", request_id: "req-123" }));
    const { user } = setup(network);
    await user.type(screen.getByLabelText("Nickname"), "Ana");
    await user.click(screen.getByRole("button", { name: "Start chatting" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("request id req-123");
  });
});
