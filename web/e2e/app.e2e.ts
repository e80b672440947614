/**
 * FlowChat in a real browser against a real dev server (extractive mode).
 * One browser and one server for the file; a fresh browser context per test,
 * so every test starts with empty localStorage.
 *
 * Elements are found by role and accessible name (the UI contract), never by
 * CSS class.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  A11yChecks,
  ANSWER_TIMEOUT,
  PHONE,
  horizontalOverflow,
  launchBrowser,
  screenshot,
  startServer,
  withPage,
  type RunningServer,
} from "./harness";

const CHAIR_QUESTION = "How much is the desk chair allowance?";
const CHAIR_EXCERPT = /one-time allowance of 150 euros for a desk chair/;
const POLICY_FILE = "remote-work-policy.md";

let browser: Browser;
let server: RunningServer;

beforeAll(async () => {
  [server, browser] = await Promise.all([startServer(), launchBrowser()]);
});

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await server?.stop();
});

// ---------------------------------------------------------------------------
// Page helpers (roles and names from the UI contract)
// ---------------------------------------------------------------------------

const nicknameBox = (page: Page) => page.getByRole("textbox", { name: "Nickname" });
const composer = (page: Page) => page.getByRole("textbox", { name: "Message", exact: true });
const sendButton = (page: Page) => page.getByRole("button", { name: "Send", exact: true });
const thread = (page: Page) => page.getByRole("region", { name: "Messages", exact: true });
const answers = (page: Page) => thread(page).getByRole("article", { name: "FlowChat", exact: true });
const questions = (page: Page) => thread(page).getByRole("article", { name: "You", exact: true });
const sidebar = (page: Page) => page.getByRole("navigation", { name: "Conversations", exact: true });
const documentsPanel = (page: Page) => page.getByRole("complementary", { name: "Documents", exact: true });

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The sidebar button that opens a conversation (not its delete button). */
function conversationButton(page: Page, title: string): Locator {
  return sidebar(page).getByRole("button", { name: new RegExp(`^${escapeRegExp(title)}`) });
}

async function startSession(page: Page, nickname: string): Promise<void> {
  await page.goto("/");
  await nicknameBox(page).fill(nickname);
  await page.getByRole("button", { name: "Start chatting" }).click();
  await composer(page).waitFor({ state: "visible" });
}

/**
 * Sends `question` and waits for the answer's "Sources" heading (every
 * question used here has matching passages). Returns the answer article.
 */
async function ask(page: Page, question: string): Promise<Locator> {
  const before = await answers(page).count();
  await composer(page).fill(question);
  await sendButton(page).click();
  await questions(page).filter({ hasText: question }).last().waitFor({ state: "visible" });
  const answer = answers(page).nth(before);
  await answer.getByRole("heading", { name: "Sources" }).waitFor({ state: "visible", timeout: ANSWER_TIMEOUT });
  return answer;
}

/** A citation of `answer`: a <details> whose summary names `source`. */
function citation(answer: Locator, source: string): Locator {
  return answer.locator("details").filter({ has: answer.page().locator("summary", { hasText: source }) });
}

async function storedToken(page: Page): Promise<string> {
  const raw = await page.evaluate(() => localStorage.getItem("flowchat.session"));
  expect(raw, "localStorage flowchat.session").toBeTruthy();
  return (JSON.parse(raw as string) as { token: string }).token;
}

async function isFocused(locator: Locator): Promise<boolean> {
  return locator.evaluate((el) => el === document.activeElement).catch(() => false);
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

describe("FlowChat web app", () => {
  test("a: ask a question and read the answer with its sources", async () => {
    await withPage(browser, server.url, "chat-answer", async (page) => {
      await startSession(page, "Ana");
      await expect.poll(() => page.getByText("Ana", { exact: true }).count()).toBeGreaterThan(0);

      const answer = await ask(page, CHAIR_QUESTION);
      const cite = citation(answer, POLICY_FILE).first();
      await cite.waitFor({ state: "visible" });
      const summary = (await cite.locator("summary").textContent())?.replace(/\s+/g, " ").trim() ?? "";
      expect(summary).toMatch(/^\[\d+\]/);
      expect(summary).toContain(POLICY_FILE);
      expect(summary).toMatch(/Remote work policy|page \d+/);

      // Collapsed until asked, then the excerpt shows.
      expect(await cite.evaluate((el) => (el as HTMLDetailsElement).open)).toBe(false);
      await cite.locator("summary").click();
      await expect.poll(() => cite.evaluate((el) => (el as HTMLDetailsElement).open)).toBe(true);
      await cite.getByText(CHAIR_EXCERPT).first().waitFor({ state: "visible" });

      await screenshot(page, "chat-answer");
    });
  });

  test("b: the gate refuses a nickname with forbidden characters", async () => {
    await withPage(browser, server.url, "gate-validation", async (page) => {
      const sessionRequests: string[] = [];
      page.on("request", (request) => {
        if (request.method() === "POST" && new URL(request.url()).pathname === "/api/session") sessionRequests.push(request.url());
      });
      await page.goto("/");
      await nicknameBox(page).fill("<bad>");
      await page.getByRole("button", { name: "Start chatting" }).click();

      const alert = page.getByRole("alert").filter({ hasText: /may contain only letters, digits, spaces/i });
      await alert.waitFor({ state: "visible" });
      expect(await alert.textContent()).toMatch(/found "<"/);
      // Still on the gate, nothing stored, nothing sent.
      expect(await nicknameBox(page).isVisible()).toBe(true);
      expect(await nicknameBox(page).getAttribute("aria-invalid")).toBe("true");
      expect(await page.evaluate(() => localStorage.getItem("flowchat.session"))).toBeNull();
      expect(sessionRequests).toEqual([]);
      expect(await composer(page).count()).toBe(0);

      // Fixing the nickname clears the error.
      await nicknameBox(page).fill("Good name");
      await expect.poll(() => alert.count()).toBe(0);
    });
  });

  test("c: upload a Markdown file, see it indexed under My documents, and get answers from it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flowchat-e2e-upload-"));
    const fileName = "quokka-budget.md";
    const content = "# Quokka planning\n\nThe quokka budget for 2027 is 42 zorkmids, approved by the quokka council.\n";
    const filePath = join(dir, fileName);
    writeFileSync(filePath, content);
    try {
      await withPage(browser, server.url, "documents", async (page) => {
        await startSession(page, "Uploader");
        const panel = documentsPanel(page);
        await panel.getByRole("heading", { name: "Documents" }).first().waitFor({ state: "visible" });
        // Wide screen: the panel is always shown and its toggle is hidden.
        expect(await page.getByRole("button", { name: "Documents", exact: true }).isVisible()).toBe(false);

        // Shared fixture documents are listed.
        const shared = section(panel, "Shared documents");
        await shared.getByText(POLICY_FILE).first().waitFor({ state: "visible" });

        await panel.getByRole("button", { name: "Upload documents" }).waitFor({ state: "visible" });
        await panel.getByLabel("Choose files to upload").setInputFiles(filePath);

        // Staged: name and size, before anything is sent.
        await panel.getByText(fileName).first().waitFor({ state: "visible" });
        const bytes = Buffer.byteLength(content);
        const panelText = (await panel.textContent()) ?? "";
        const afterName = panelText.slice(panelText.indexOf(fileName) + fileName.length);
        expect(afterName, "the staged file's size follows its name").toMatch(new RegExp(`^\\D{0,40}?${bytes}\\s?(?:bytes|B)`));
        const upload = panel.getByRole("button", { name: /^Upload 1 file/ });
        await upload.click();

        // Indexed, and listed as mine (with a delete button).
        const mine = section(panel, "My documents");
        await mine.getByText(fileName).first().waitFor({ state: "visible", timeout: ANSWER_TIMEOUT });
        await expect
          .poll(async () => (await mine.textContent()) ?? "", { timeout: ANSWER_TIMEOUT })
          .toMatch(/Indexed/);
        await mine.getByRole("button", { name: `Delete ${fileName}` }).waitFor({ state: "visible" });
        // The upload's own row follows the document to "Indexed" too.
        await expect
          .poll(async () => ((await panel.textContent()) ?? "").includes("Indexing"), {
            timeout: ANSWER_TIMEOUT,
            message: "the upload row still says Indexing… after the document was indexed",
          })
          .toBe(false);
        await screenshot(page, "documents");

        const answer = await ask(page, "What is the quokka budget?");
        await citation(answer, fileName).first().waitFor({ state: "visible" });
        expect(await answer.textContent()).toMatch(/42 zorkmids/);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  test("c2: the server refuses a file whose content is not its type; my document can be deleted", async () => {
    await withPage(browser, server.url, "upload-refused", async (page) => {
      await startSession(page, "Careful");
      const panel = documentsPanel(page);
      const input = panel.getByLabel("Choose files to upload");

      // A ".pdf" that is plain text: only the server can tell (415, rule "content").
      await input.setInputFiles({ name: "not-really.pdf", mimeType: "application/pdf", buffer: Buffer.from("just text, no PDF header") });
      await panel.getByRole("button", { name: /^Upload 1 file/ }).click();
      await expect
        .poll(async () => (await panel.textContent()) ?? "", { timeout: ANSWER_TIMEOUT })
        .toMatch(/not supported[\s\S]*PDF/i);
      expect(await section(panel, "My documents").getByText("not-really.pdf").count()).toBe(0);

      // A good one, then deleted after confirming.
      const name = "delete-me.txt";
      await input.setInputFiles({ name, mimeType: "text/plain", buffer: Buffer.from("Temporary notes about the pelican project.") });
      await panel.getByRole("button", { name: /^Upload 1 file/ }).click();
      const mine = section(panel, "My documents");
      const remove = mine.getByRole("button", { name: `Delete ${name}` });
      await remove.waitFor({ state: "visible", timeout: ANSWER_TIMEOUT });
      await remove.click();
      const dialog = page.getByRole("dialog", { name: "Delete document?" });
      await dialog.getByRole("button", { name: "Delete" }).click();
      await expect.poll(() => mine.getByText(name).count(), { timeout: ANSWER_TIMEOUT }).toBe(0);
      // Gone on the server too.
      const token = await storedToken(page);
      const listed = await page.request.get(`${server.url}/api/documents`, { headers: { Authorization: `Bearer ${token}` } });
      const names = ((await listed.json()) as { documents: Array<{ name: string }> }).documents.map((d) => d.name);
      expect(names).not.toContain(name);
    });
  }, 120_000);

  test("c3: offline: a banner says so, sending explains it and keeps the draft, then works again", async () => {
    await withPage(browser, server.url, "offline", async (page) => {
      await startSession(page, "Traveller");
      await page.context().setOffline(true);
      await page.getByText(/You are offline/).first().waitFor({ state: "visible" });
      const draft = "Does this survive a tunnel?";
      await composer(page).fill(draft);
      await sendButton(page).click();
      await page.getByRole("alert").filter({ hasText: /offline|could not reach/i }).first().waitFor({ state: "visible" });
      expect(await composer(page).inputValue()).toBe(draft);
      await screenshot(page, "offline");

      await page.context().setOffline(false);
      await expect.poll(() => page.getByText(/You are offline/).count()).toBe(0);
      const answer = await ask(page, CHAIR_QUESTION);
      await citation(answer, POLICY_FILE).first().waitFor({ state: "visible" });
    });
  }, 120_000);

  test("d: conversations are listed, switched and deleted", async () => {
    await withPage(browser, server.url, "conversations", async (page) => {
      const titleA = CHAIR_QUESTION;
      const titleB = "What are the core hours?";
      await startSession(page, "Switcher");
      await ask(page, titleA);
      await conversationButton(page, titleA).waitFor({ state: "visible" });

      await sidebar(page).getByRole("button", { name: "New chat" }).click();
      await expect.poll(() => questions(page).count()).toBe(0);
      await ask(page, titleB);

      // Both titles, without a reload; the open one is current.
      await conversationButton(page, titleB).waitFor({ state: "visible" });
      await conversationButton(page, titleA).waitFor({ state: "visible" });
      expect(await conversationButton(page, titleB).getAttribute("aria-current")).toBe("page");

      // Switch to A: its messages, not B's.
      await conversationButton(page, titleA).click();
      await questions(page).filter({ hasText: titleA }).first().waitFor({ state: "visible" });
      await answers(page).first().getByRole("heading", { name: "Sources" }).waitFor({ state: "visible" });
      await expect.poll(() => questions(page).filter({ hasText: titleB }).count()).toBe(0);
      await expect.poll(() => conversationButton(page, titleA).getAttribute("aria-current")).toBe("page");

      // Delete B through the confirmation dialog.
      await conversationButton(page, titleB).hover();
      await sidebar(page).getByRole("button", { name: `Delete conversation "${titleB}"` }).click();
      const dialog = page.getByRole("dialog", { name: "Delete conversation?" });
      await dialog.waitFor({ state: "visible" });
      await dialog.getByRole("button", { name: "Delete", exact: true }).click();
      await expect.poll(() => dialog.count()).toBe(0);
      await expect.poll(() => conversationButton(page, titleB).count()).toBe(0);
      expect(await conversationButton(page, titleA).count()).toBe(1);

      // The API agrees.
      const token = await storedToken(page);
      const response = await page.request.get("/api/conversations", { headers: { Authorization: `Bearer ${token}` } });
      expect(response.status()).toBe(200);
      const titles = ((await response.json()) as { conversations: Array<{ title: string }> }).conversations.map((c) => c.title);
      expect(titles.some((t) => t.startsWith("What are the core hours"))).toBe(false);
      expect(titles.some((t) => t.startsWith("How much is the desk chair"))).toBe(true);
    });
  }, 150_000);

  test("e: a reload keeps the session and the conversation history", async () => {
    await withPage(browser, server.url, "reload", async (page) => {
      const nickname = "Reload Tester";
      await startSession(page, nickname);
      await ask(page, CHAIR_QUESTION);

      await page.reload();
      await composer(page).waitFor({ state: "visible" });
      expect(await nicknameBox(page).count()).toBe(0);
      await page.getByText(nickname, { exact: true }).first().waitFor({ state: "visible" });

      await conversationButton(page, CHAIR_QUESTION).click();
      await questions(page).filter({ hasText: CHAIR_QUESTION }).first().waitFor({ state: "visible" });
      const answer = answers(page).first();
      await answer.getByRole("heading", { name: "Sources" }).waitFor({ state: "visible" });
      await citation(answer, POLICY_FILE).first().waitFor({ state: "visible" });
    });
  }, 120_000);

  describe("f: with one chat message per minute", () => {
    let limited: RunningServer;
    beforeAll(async () => {
      limited = await startServer({ env: { RATE_LIMIT_CHAT_PER_MINUTE: "1" } });
    });
    afterAll(async () => {
      await limited?.stop();
    });

    test("a second message is refused with a countdown and the draft is kept", async () => {
      await withPage(browser, limited.url, "rate-limit", async (page) => {
        await startSession(page, "Hasty");
        await ask(page, CHAIR_QUESTION);

        const draft = "What are the core hours?";
        await composer(page).fill(draft);
        await sendButton(page).click();
        const alert = page.getByRole("alert").filter({ hasText: /Too many requests/ });
        await alert.waitFor({ state: "visible" });
        const pattern = /Too many requests\. Try again in (\d+) seconds?\./;
        const first = Number(pattern.exec((await alert.textContent()) ?? "")?.[1]);
        expect(first, `alert text: ${await alert.textContent()}`).toBeGreaterThan(0);
        expect(await composer(page).inputValue()).toBe(draft);
        expect(await questions(page).filter({ hasText: draft }).count()).toBe(0);

        // The visible countdown is a role="timer" next to the alert (the alert
        // itself is announced once and not re-read every second).
        const timer = page.getByRole("timer");
        await timer.waitFor({ state: "visible" });
        if (first >= 2) {
          await expect
            .poll(async () => Number(/(\d+) seconds?/.exec((await timer.textContent()) ?? "")?.[1]), {
              timeout: 5_000,
              message: `the countdown from ${first} s never went down`,
            })
            .toBeLessThan(first);
        }
      });
    }, 120_000);
  });

  describe("g: accessibility (axe-core)", () => {
    test("the gate, light and dark, wide and phone", async () => {
      const a11y = new A11yChecks();
      await withPage(browser, server.url, "a11y-gate", async (page) => {
        await page.goto("/");
        await nicknameBox(page).waitFor({ state: "visible" });
        await a11y.check(page, "gate (light)");
        await page.emulateMedia({ colorScheme: "dark" });
        await a11y.check(page, "gate (dark)");
        // With a validation error showing.
        await page.getByRole("button", { name: "Start chatting" }).click();
        await page.getByRole("alert").first().waitFor({ state: "visible" });
        await a11y.check(page, "gate with error (dark)");
        await page.setViewportSize(PHONE);
        await a11y.check(page, "gate (dark, phone)");
        a11y.add(await horizontalOverflow(page, "gate (phone)"));
      });
      a11y.assertClean();
    });

    test("the chat with an expanded citation, the documents panel and the dialog, light and dark", async () => {
      const a11y = new A11yChecks();
      await withPage(browser, server.url, "a11y-chat", async (page) => {
        await startSession(page, "Axe");
        const answer = await ask(page, CHAIR_QUESTION);
        const cite = citation(answer, POLICY_FILE).first();
        await cite.locator("summary").click();
        await cite.getByText(CHAIR_EXCERPT).first().waitFor({ state: "visible" });
        await documentsPanel(page).getByRole("heading", { name: "Shared documents" }).waitFor({ state: "visible" });

        for (const scheme of ["light", "dark"] as const) {
          await page.emulateMedia({ colorScheme: scheme });
          await a11y.check(page, `chat with answer and documents panel (${scheme})`);
          if (scheme === "dark") await screenshot(page, "chat-dark");

          await page.getByRole("button", { name: "Change nickname" }).click();
          const dialog = page.getByRole("dialog", { name: "Change nickname?" });
          await dialog.waitFor({ state: "visible" });
          await a11y.check(page, `change nickname dialog (${scheme})`);
          await dialog.getByRole("button", { name: "Cancel" }).click();
          await expect.poll(() => dialog.count()).toBe(0);
        }
      });
      a11y.assertClean();
    }, 120_000);

    test("phone width 375x740: chat, conversations and documents, without sideways scrolling", async () => {
      const a11y = new A11yChecks();
      await withPage(
        browser,
        server.url,
        "a11y-phone",
        async (page) => {
          await startSession(page, "Pocket");
          const answer = await ask(page, CHAIR_QUESTION);
          await citation(answer, POLICY_FILE).first().locator("summary").click();
          await a11y.check(page, "chat (phone, light)");
          a11y.add(await horizontalOverflow(page, "chat (phone)"));
          await screenshot(page, "phone");
          await page.emulateMedia({ colorScheme: "dark" });
          await a11y.check(page, "chat (phone, dark)");
          await page.emulateMedia({ colorScheme: "light" });

          // The sidebar toggle.
          const conversationsToggle = page.getByRole("button", { name: "Conversations", exact: true });
          await conversationsToggle.click();
          await sidebar(page).getByRole("button", { name: "New chat" }).waitFor({ state: "visible" });
          await a11y.check(page, "conversations open (phone)");
          await screenshot(page, "phone-conversations");
          // Escape closes it (the toggle itself is under the overlay).
          await page.keyboard.press("Escape");
          await expect.poll(() => conversationsToggle.getAttribute("aria-expanded")).toBe("false");

          // The documents toggle.
          const documentsToggle = page.getByRole("button", { name: "Documents", exact: true });
          await documentsToggle.click();
          await documentsPanel(page).getByRole("button", { name: "Upload documents" }).waitFor({ state: "visible" });
          await a11y.check(page, "documents open (phone)");
          a11y.add(await horizontalOverflow(page, "documents open (phone)"));
          await screenshot(page, "phone-documents");
        },
        PHONE,
      );
      a11y.assertClean();
    }, 120_000);
  });

  test("h: keyboard only: start, ask with Enter, Shift+Enter for a newline", async () => {
    await withPage(browser, server.url, "keyboard", async (page) => {
      await page.goto("/");
      await nicknameBox(page).waitFor({ state: "visible" });
      await tabUntilFocused(page, nicknameBox(page));
      await page.keyboard.type("Keys Only");
      await page.keyboard.press("Enter");
      await composer(page).waitFor({ state: "visible" });

      await tabUntilFocused(page, composer(page));
      await page.keyboard.type(CHAIR_QUESTION);
      await page.keyboard.press("Shift+Enter");
      await page.keyboard.type("Thanks.");
      expect(await composer(page).inputValue()).toBe(`${CHAIR_QUESTION}\nThanks.`);
      await page.keyboard.press("Enter");

      await questions(page).filter({ hasText: "Thanks." }).first().waitFor({ state: "visible" });
      await answers(page).first().getByRole("heading", { name: "Sources" }).waitFor({ state: "visible", timeout: ANSWER_TIMEOUT });
      await expect.poll(() => composer(page).inputValue()).toBe("");
    });
  }, 120_000);

  test("i: changing the nickname asks first, then returns to the gate", async () => {
    await withPage(browser, server.url, "change-nickname", async (page) => {
      await startSession(page, "Old Name");
      const dialog = page.getByRole("dialog", { name: "Change nickname?" });

      await page.getByRole("button", { name: "Change nickname" }).click();
      await dialog.waitFor({ state: "visible" });
      await dialog.getByRole("button", { name: "Cancel" }).click();
      await expect.poll(() => dialog.count()).toBe(0);
      expect(await composer(page).isVisible()).toBe(true);

      await page.getByRole("button", { name: "Change nickname" }).click();
      await dialog.getByRole("button", { name: "Start a new session" }).click();
      await nicknameBox(page).waitFor({ state: "visible" });
      expect(await page.evaluate(() => localStorage.getItem("flowchat.session"))).toBeNull();
    });
  });
});

/** The smallest element holding the heading `name` and not the other section's heading. */
function section(panel: Locator, name: "My documents" | "Shared documents"): Locator {
  const other = name === "My documents" ? "Shared documents" : "My documents";
  const page = panel.page();
  return panel
    .locator("*")
    .filter({ has: page.getByRole("heading", { name, exact: true }) })
    .filter({ hasNot: page.getByRole("heading", { name: other, exact: true }) })
    .first();
}

/** Presses Tab (at most 40 times) until `target` has focus. */
async function tabUntilFocused(page: Page, target: Locator): Promise<void> {
  for (let i = 0; i < 40; i += 1) {
    if (await isFocused(target)) return;
    await page.keyboard.press("Tab");
  }
  if (!(await isFocused(target))) {
    const active = await page.evaluate(() => document.activeElement?.outerHTML.slice(0, 200) ?? "none");
    throw new Error(`Tab never reached the target within 40 presses; focus is on ${active}`);
  }
}
