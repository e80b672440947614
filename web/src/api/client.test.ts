import { describe, expect, it, vi } from "vitest";
import { FakeNetwork, json, problem } from "../test/fakeNetwork";
import { ApiError } from "./errors";

const finalJob = {
  job_id: "j1",
  kind: "chat",
  status: "succeeded",
  attempts: 1,
  answer: "Done [1]",
  citations: [],
  created_at: "t",
  updated_at: "t",
};

function sse(text: string): Response {
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      // Split mid-event to exercise reassembly.
      const mid = Math.floor(text.length / 2);
      controller.enqueue(encoder.encode(text.slice(0, mid)));
      controller.enqueue(encoder.encode(text.slice(mid)));
      controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
}

describe("ApiClient.followJob", () => {
  it("reports status and partial text, then returns the answer", async () => {
    const network = new FakeNetwork().on("GET", "/api/chat/j1/events", () =>
      sse(
        'retry: 1000\n\nevent: status\ndata: {"status":"running","attempts":1,"error":null}\n\n' +
          'event: partial\ndata: {"text":"Do"}\n\nevent: partial\ndata: {"text":"Done"}\n\n' +
          `event: answer\ndata: ${JSON.stringify(finalJob)}\n\n`,
      ),
    );
    const onPartial = vi.fn();
    const onStatus = vi.fn();
    const api = network.client();
    const job = await api.followJob("j1", { onPartial, onStatus });
    expect(job.answer).toBe("Done [1]");
    expect(onPartial.mock.calls.map((c) => c[0])).toEqual(["Do", "Done"]);
    expect(onStatus).toHaveBeenCalledWith("running", 1, null);
    expect(network.requests[0].headers.get("authorization")).toBe(`Bearer ${network.sessions[0].token}`);
  });

  it("reconnects when a stream ends before the answer", async () => {
    let calls = 0;
    const network = new FakeNetwork().on("GET", "/api/chat/j1/events", () => {
      calls += 1;
      return calls === 1 ? sse('event: partial\ndata: {"text":"x"}\n\n') : sse(`event: answer\ndata: ${JSON.stringify(finalJob)}\n\n`);
    });
    const job = await network.client().followJob("j1");
    expect(job.status).toBe("succeeded");
    expect(calls).toBe(2);
  });

  it("falls back to long-polling when streaming fails", async () => {
    let polls = 0;
    const network = new FakeNetwork()
      .on("GET", "/api/chat/j1/events", problem(502, { detail: "bad gateway" }))
      .on("GET", /^\/api\/chat\/j1\?wait=20$/, () => {
        polls += 1;
        return polls === 1 ? json(200, { ...finalJob, status: "running", partial: "Do", answer: null }) : json(200, finalJob);
      });
    const onPartial = vi.fn();
    const job = await network.client().followJob("j1", { onPartial });
    expect(job.answer).toBe("Done [1]");
    expect(onPartial).toHaveBeenCalledWith("Do");
  });

  it("stops at errors the server states", async () => {
    const network = new FakeNetwork().on("GET", "/api/chat/j1/events", problem(404, { detail: "not found" }));
    await expect(network.client().followJob("j1")).rejects.toMatchObject({
      kind: "not-found",
    });
  });
});

describe("ApiClient errors", () => {
  it("carries the problem's field, request id and Retry-After", async () => {
    const network = new FakeNetwork().on(
      "POST",
      "/api/chat",
      problem(429, { detail: "chat rate limit", request_id: "req-123" }, { "Retry-After": "9" }),
    );
    const error = await network.client().sendMessage("hi").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ kind: "rate-limited", retryAfterSeconds: 9, requestId: "req-123" });
  });
});
