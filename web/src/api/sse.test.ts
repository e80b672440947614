import { describe, expect, it } from "vitest";
import { SseParser } from "./sse";

describe("SseParser", () => {
  it("parses events, comments and retry lines", () => {
    const parser = new SseParser();
    const events = parser.push('retry: 1000\n\n: keep-alive\n\nevent: status\ndata: {"status":"running"}\n\nevent: partial\ndata: {"text":"a"}\n\n');
    expect(events).toEqual([
      { event: "status", data: '{"status":"running"}' },
      { event: "partial", data: '{"text":"a"}' },
    ]);
  });

  it("joins events split across chunks, CRLF included", () => {
    const parser = new SseParser();
    const text = 'event: answer\r\ndata: {"x":\r\ndata: 1}\r\n\r\n';
    const out = [];
    for (const ch of text) out.push(...parser.push(ch));
    expect(out).toEqual([{ event: "answer", data: '{"x":\n1}' }]);
  });

  it("defaults the event name to message", () => {
    expect(new SseParser().push("data: hi\n\n")).toEqual([{ event: "message", data: "hi" }]);
  });
});
