/**
 * Generated answers stream into the page: the dev server's drain asks the
 * fake CI&T Flow server, which sends its answer in chunks 300 ms apart, and
 * the browser shows the text growing before the final answer and its sources.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ANSWER_TIMEOUT, launchBrowser, screenshot, startFakeFlow, startServer, withPage, type FakeFlow, type RunningServer } from "./harness";

let browser: Browser;
let flow: FakeFlow;
let server: RunningServer;

beforeAll(async () => {
  flow = await startFakeFlow(300);
  [server, browser] = await Promise.all([startServer({ env: flow.env }), launchBrowser()]);
});

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await server?.stop();
  await flow?.stop();
});

/** The text of the last FlowChat answer, whitespace collapsed. */
async function lastAnswerText(page: Page): Promise<string> {
  const answers = page.getByRole("region", { name: "Messages", exact: true }).getByRole("article", { name: "FlowChat", exact: true });
  if ((await answers.count()) === 0) return "";
  return ((await answers.last().textContent()) ?? "").replace(/\s+/g, " ").trim();
}

describe("streamed answers (fake CI&T Flow server)", () => {
  test("partial text appears while the answer streams, then the answer with its sources", async () => {
    await withPage(browser, server.url, "streaming", async (page) => {
      await page.goto("/");
      await page.getByRole("textbox", { name: "Nickname" }).fill("Streamer");
      await page.getByRole("button", { name: "Start chatting" }).click();
      await page.getByRole("textbox", { name: "Message", exact: true }).fill("How much is the desk chair allowance?");
      await page.getByRole("button", { name: "Send", exact: true }).click();

      // Seen mid-stream: the answer has begun ("According to [1], …") but its
      // sources are not there yet.
      const seen: string[] = [];
      await expect
        .poll(
          async () => {
            const text = await lastAnswerText(page);
            if (text && !seen.includes(text)) seen.push(text);
            const streaming = text.includes("According to") && !text.includes("Sources");
            return streaming;
          },
          { timeout: ANSWER_TIMEOUT, interval: 50, message: `no partial answer seen; texts: ${JSON.stringify(seen)}` },
        )
        .toBe(true);
      await screenshot(page, "streaming-partial");

      // Keep watching until the sources arrive, recording each text shown.
      await expect
        .poll(
          async () => {
            const text = await lastAnswerText(page);
            if (text && !seen.includes(text)) seen.push(text);
            return text.includes("Sources");
          },
          { timeout: ANSWER_TIMEOUT, interval: 50, message: `the answer never finished; texts: ${JSON.stringify(seen)}` },
        )
        .toBe(true);
      const final = await lastAnswerText(page);
      expect(final).toMatch(/According to \[1\]/);
      expect(final).toContain("remote-work-policy.md");
      // The text grew in steps: several distinct partial texts were shown.
      const partials = seen.filter((t) => t.includes("According to") && !t.includes("Sources"));
      expect(partials.length, JSON.stringify(seen)).toBeGreaterThan(1);
      await screenshot(page, "streaming-final");
    });
  }, 120_000);
});
