/**
 * End-to-end harness: a real `flowchat-devserver` (extractive mode, temp data
 * and documents folders) and a real headless Chromium driven by
 * `playwright-core`. No browser is ever downloaded: Debian's `chromium` is used
 * (`CHROMIUM_PATH` overrides it).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

const requireFromHere = createRequire(import.meta.url);

export const WEB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_ROOT = resolve(WEB_DIR, "..");
export const DIST_DIR = join(WEB_DIR, "dist");
export const RESULTS_DIR = join(WEB_DIR, "test-results");
export const SCREENSHOTS_DIR = join(RESULTS_DIR, "screenshots");
export const METRICS_FILE = join(RESULTS_DIR, "metrics.json");

/** Generous waits: a 2-core CI machine with a debug build of the server. */
export const UI_TIMEOUT = 15_000;
export const ANSWER_TIMEOUT = 45_000;

// ---------------------------------------------------------------------------
// Fixture documents (the shared documents folder of every server)
// ---------------------------------------------------------------------------

export const FIXTURE_DOCUMENTS: Record<string, string> = {
  "remote-work-policy.md": `# Remote work policy

## Eligibility

Employees who have completed their probation period of three months may work
remotely up to three days per week. Team leads approve the schedule.

## Equipment

The company provides a laptop, a monitor and a headset for home offices.

Employees may claim a one-time allowance of 150 euros for a desk chair.

Equipment remains company property and must be returned when the employment ends.

## Working hours

Core hours are 10:00 to 16:00 in the employee's local time zone. Outside core
hours, people may organise their time freely.
`,
  "travel-guidelines.md": `# Travel guidelines

## Trains and flights

Book trains for trips under five hours. Flights need approval from the team lead
and must be booked in economy class.

## Meals

Meals on business trips are reimbursed up to 40 euros per day with receipts.
`,
};

// ---------------------------------------------------------------------------
// Dev server
// ---------------------------------------------------------------------------

export interface ServerOptions {
  /** Extra environment for the server (e.g. RATE_LIMIT_CHAT_PER_MINUTE). */
  env?: Record<string, string>;
  /** Files written into the shared documents folder; defaults to FIXTURE_DOCUMENTS. */
  documents?: Record<string, string>;
  drainConcurrency?: number;
}

export interface RunningServer {
  url: string;
  docsDir: string;
  /** Everything the server printed, for failure messages. */
  output: () => string;
  stop: () => Promise<void>;
}

export function devServerBinary(): string {
  const bin = process.env.FLOWCHAT_DEVSERVER_BIN ?? join(REPO_ROOT, "target", "debug", "flowchat-devserver");
  if (!existsSync(bin)) {
    if (process.env.FLOWCHAT_DEVSERVER_BIN) {
      throw new Error(`FLOWCHAT_DEVSERVER_BIN=${bin} does not exist`);
    }
    console.log(`[e2e] ${bin} is missing: running cargo build -p flowchat-devserver --locked`);
    const build = spawnSync("cargo", ["build", "-p", "flowchat-devserver", "--locked"], {
      cwd: REPO_ROOT,
      stdio: "inherit",
    });
    if (build.status !== 0 || !existsSync(bin)) {
      throw new Error(`cargo build -p flowchat-devserver failed (exit ${build.status})`);
    }
  }
  return bin;
}

/**
 * The fake CI&T Flow server (crates/fake-flow, example `serve`): the only
 * stand-in for an external service. `FLOWCHAT_FAKE_FLOW_BIN` overrides
 * target/debug/examples/serve, which is built when missing.
 */
export function fakeFlowBinary(): string {
  const bin = process.env.FLOWCHAT_FAKE_FLOW_BIN ?? join(REPO_ROOT, "target", "debug", "examples", "serve");
  if (!existsSync(bin)) {
    if (process.env.FLOWCHAT_FAKE_FLOW_BIN) throw new Error(`FLOWCHAT_FAKE_FLOW_BIN=${bin} does not exist`);
    console.log(`[e2e] ${bin} is missing: running cargo build -p flowchat-fake-flow --example serve --locked`);
    const build = spawnSync("cargo", ["build", "-p", "flowchat-fake-flow", "--example", "serve", "--locked"], {
      cwd: REPO_ROOT,
      stdio: "inherit",
    });
    if (build.status !== 0 || !existsSync(bin)) throw new Error(`building the fake Flow server failed (exit ${build.status})`);
  }
  return bin;
}

export interface FakeFlow {
  /** Variables that point a dev server at this fake (LLM_PROVIDER=flow, FLOW_*). */
  env: Record<string, string>;
  stop: () => Promise<void>;
}

/** Starts the fake Flow server; `chunkDelayMs` spaces the streamed chunks of every answer. */
export async function startFakeFlow(chunkDelayMs = 0): Promise<FakeFlow> {
  const child = spawn(fakeFlowBinary(), ["--chunk-delay-ms", String(chunkDelayMs)], {
    env: baseEnv(),
    stdio: ["ignore", "pipe", "inherit"],
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((done) => child.once("exit", done));
      child.kill("SIGKILL");
      await exited;
    }
  };
  try {
    const baseUrl = await new Promise<string>((resolveUrl, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error("the fake Flow server did not print its address within 30 s")), 30_000);
      child.stdout?.on("data", (chunk: Buffer) => {
        out += chunk.toString("utf8");
        const line = /^(http:\/\/\S+)\n/.exec(out);
        if (line) {
          clearTimeout(timer);
          resolveUrl(line[1]);
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`the fake Flow server exited early (code ${code})`));
      });
    });
    return {
      env: {
        LLM_PROVIDER: "flow",
        FLOW_BASE_URL: baseUrl,
        FLOW_CLIENT_ID: "fake-client-id",
        FLOW_CLIENT_SECRET: "fake-client-secret",
        FLOW_TENANT: "fake-tenant",
        FLOW_AGENT: "flowchat-e2e",
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

export function assertWebBuilt(): void {
  if (!existsSync(join(DIST_DIR, "index.html"))) {
    throw new Error(
      `${join(DIST_DIR, "index.html")} is missing: build the web app first (cd web && npm run build), then run npm run e2e.`,
    );
  }
}

/** Only what the server needs from our environment: no stray LLM/Upstash settings. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of ["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ"]) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  return env;
}

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  assertWebBuilt();
  const bin = devServerBinary();
  const root = mkdtempSync(join(tmpdir(), "flowchat-e2e-"));
  const dataDir = join(root, "data");
  const docsDir = join(root, "documents");
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(docsDir, { recursive: true });
  const documents = options.documents ?? FIXTURE_DOCUMENTS;
  for (const [name, content] of Object.entries(documents)) writeFileSync(join(docsDir, name), content);

  const args = ["--port", "0", "--host", "127.0.0.1", "--data-dir", dataDir, "--docs-dir", docsDir, "--web-dir", DIST_DIR];
  if (options.drainConcurrency !== undefined) args.push("--drain-concurrency", String(options.drainConcurrency));

  const child: ChildProcess = spawn(bin, args, {
    cwd: root,
    env: {
      ...baseEnv(),
      RUST_LOG: "warn",
      RATE_LIMIT_IP_PER_MINUTE: "10000",
      RATE_LIMIT_CHAT_PER_MINUTE: "100",
      // Every test's browser is 127.0.0.1: one address for the whole run.
      MAX_FOLLOWERS_PER_IP: "1000",
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const append = (chunk: Buffer) => {
    output += chunk.toString("utf8");
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout?.on("data", append);
  child.stderr?.on("data", append);

  let exited = false;
  const exitedPromise = new Promise<void>((resolveExit) => {
    child.once("exit", () => {
      exited = true;
      resolveExit();
    });
  });

  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      const killTimer = setTimeout(() => {
        if (!exited) child.kill("SIGKILL");
      }, 5_000);
      await exitedPromise;
      clearTimeout(killTimer);
    }
    rmSync(root, { recursive: true, force: true });
  };

  try {
    const url = await new Promise<string>((resolveUrl, reject) => {
      const timer = setTimeout(() => reject(new Error("the dev server did not report its address within 60 s")), 60_000);
      const onData = () => {
        const match = /FlowChat is running at (http:\/\/[^\s]+)/.exec(output);
        if (match) {
          clearTimeout(timer);
          resolveUrl(match[1].replace(/\/$/, ""));
        }
      };
      child.stdout?.on("data", onData);
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the dev server exited early (code ${code}, signal ${signal})`));
      });
      onData();
    });
    await waitForDocumentsIndexed(url, Object.keys(documents));
    return { url, docsDir, output: () => output, stop };
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n--- dev server output ---\n${output}`);
  }
}

async function waitForDocumentsIndexed(url: string, names: string[], timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${url}/api/documents`);
      if (response.ok) {
        const body = (await response.json()) as { documents: Array<{ name: string; status: string }> };
        last = JSON.stringify(body.documents.map((d) => [d.name, d.status]));
        const failed = body.documents.filter((d) => d.status === "failed");
        if (failed.length) throw new Error(`fixture documents failed to index: ${last}`);
        const indexed = new Set(body.documents.filter((d) => d.status === "indexed").map((d) => d.name));
        if (names.every((n) => indexed.has(n))) return;
      } else {
        last = `HTTP ${response.status}`;
      }
    } catch (error) {
      if ((error as Error).message.startsWith("fixture documents failed")) throw error;
      last = String(error);
    }
    await delay(250);
  }
  throw new Error(`fixture documents not indexed within ${timeoutMs} ms (last: ${last})`);
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A session made through the API, as the app stores it in localStorage. */
export interface StoredSession {
  token: string;
  session_id: string;
  nickname: string;
  expires_at: string;
}

export async function createSession(url: string, nickname: string): Promise<StoredSession> {
  const response = await fetch(`${url}/api/session`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ nickname }),
  });
  if (response.status !== 201) throw new Error(`POST /api/session: ${response.status} ${await response.text()}`);
  return (await response.json()) as StoredSession;
}

// ---------------------------------------------------------------------------
// Browser
// ---------------------------------------------------------------------------

export function chromiumPath(): string {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  if (existsSync("/usr/bin/chromium")) return "/usr/bin/chromium";
  const found = spawnSync("sh", ["-c", "command -v chromium || command -v chromium-browser"], { encoding: "utf8" });
  const path = found.stdout.trim().split("\n")[0];
  if (!path) throw new Error("Chromium not found: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH");
  return path;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

export interface Viewport {
  width: number;
  height: number;
}

export const DESKTOP: Viewport = { width: 1280, height: 800 };
export const PHONE: Viewport = { width: 375, height: 740 };

/** A fresh context (clean localStorage) and page on `baseURL`. */
export async function newPage(
  browser: Browser,
  baseURL: string,
  viewport: Viewport = DESKTOP,
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ baseURL, viewport, reducedMotion: "reduce", locale: "en-US" });
  context.setDefaultTimeout(UI_TIMEOUT);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console.error: ${message.text()}`);
  });
  pageProblems.set(page, problems);
  return { context, page };
}

const pageProblems = new WeakMap<Page, string[]>();

/** Page errors and console errors seen so far (printed when a test fails). */
export function problemsOf(page: Page): string[] {
  return pageProblems.get(page) ?? [];
}

/**
 * Runs `body` with a fresh page; on failure saves a screenshot
 * (`failure-<name>.png`), prints the page's errors, and rethrows.
 */
export async function withPage(
  browser: Browser,
  baseURL: string,
  name: string,
  body: (page: Page, context: BrowserContext) => Promise<void>,
  viewport: Viewport = DESKTOP,
): Promise<void> {
  const { context, page } = await newPage(browser, baseURL, viewport);
  try {
    await body(page, context);
  } catch (error) {
    try {
      const file = await screenshot(page, `failure-${name}`);
      console.error(`[e2e] ${name} failed; screenshot: ${file}`);
    } catch {
      // the page may be gone
    }
    const problems = problemsOf(page);
    if (problems.length) console.error(`[e2e] ${name}: browser errors:\n  ${problems.join("\n  ")}`);
    throw error;
  } finally {
    await context.close().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------
// Accessibility (axe-core)
// ---------------------------------------------------------------------------

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  helpUrl: string;
  nodes: Array<{ target: unknown[]; failureSummary?: string }>;
}

const AXE_PATH = requireFromHere.resolve("axe-core/axe.min.js");
let axeSource: string | undefined;

/**
 * Runs axe-core (WCAG 2.0/2.1 A and AA plus best practices) on the whole
 * document; returns a readable report of the violations, or null.
 */
export async function a11yViolations(page: Page, label: string): Promise<string | null> {
  const hasAxe = await page.evaluate(() => typeof (window as unknown as { axe?: unknown }).axe !== "undefined");
  // The app's Content-Security-Policy (script-src 'self') refuses an inline
  // <script> (page.addScriptTag), so axe is evaluated through the DevTools
  // protocol instead, which CSP does not govern.
  if (!hasAxe) {
    axeSource ??= readFileSync(AXE_PATH, "utf8");
    await page.evaluate(axeSource);
  }
  const violations = (await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (context: Document, options: unknown) => Promise<{ violations: unknown[] }> } }).axe;
    const result = await axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
      resultTypes: ["violations"],
    });
    return result.violations;
  })) as AxeViolation[];
  if (!violations.length) return null;
  const lines = violations.map((v) => {
    const nodes = v.nodes
      .slice(0, 8)
      .map((n) => `      - ${JSON.stringify(n.target)}${n.failureSummary ? `\n        ${n.failureSummary.replace(/\n/g, "\n        ")}` : ""}`)
      .join("\n");
    return `  ${v.id} (${v.impact ?? "?"}): ${v.help}\n    ${v.helpUrl}\n${nodes}`;
  });
  await screenshot(page, `a11y-${label.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}`).catch(() => undefined);
  return `axe-core found ${violations.length} violation(s) on "${label}":\n${lines.join("\n")}`;
}

/** Fails at once on any axe-core violation. */
export async function expectNoA11yViolations(page: Page, label: string): Promise<void> {
  const report = await a11yViolations(page, label);
  if (report) throw new Error(report);
}

/**
 * Checks several states of a page and fails once at the end with every
 * state's violations, so one run shows them all.
 */
export class A11yChecks {
  private readonly reports: string[] = [];
  async check(page: Page, label: string): Promise<void> {
    const report = await a11yViolations(page, label);
    if (report) this.reports.push(report);
  }
  /** Adds a failure found some other way (e.g. horizontal overflow). */
  add(report: string | null): void {
    if (report) this.reports.push(report);
  }
  assertClean(): void {
    if (this.reports.length) throw new Error(this.reports.join("\n\n"));
  }
}

/**
 * WCAG 1.4.10 (Reflow): at a phone width nothing should make the page scroll
 * sideways. Returns a report naming the elements that stick out, or null.
 */
export async function horizontalOverflow(page: Page, label: string): Promise<string | null> {
  const found = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const scrollWidth = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);
    if (scrollWidth <= width + 1) return null;
    const describe = (el: Element) => {
      const cls = typeof (el as HTMLElement).className === "string" && (el as HTMLElement).className ? `.${(el as HTMLElement).className.trim().split(/\s+/).join(".")}` : "";
      const name = el.getAttribute("aria-label") ?? (el.textContent ?? "").trim().slice(0, 30);
      const rect = el.getBoundingClientRect();
      return `${el.tagName.toLowerCase()}${cls} "${name}" [${Math.round(rect.left + window.scrollX)}–${Math.round(rect.right + window.scrollX)}]`;
    };
    // The innermost elements that stick out are the likely causes.
    const out = [...document.querySelectorAll("body *")].filter((el) => {
      const rect = el.getBoundingClientRect();
      return rect.width > 0 && rect.right + window.scrollX > width + 1;
    });
    const leaves = out
      .filter((el) => !out.some((other) => other !== el && el.contains(other)))
      .sort((a, b) => b.getBoundingClientRect().right - a.getBoundingClientRect().right);
    return { width, scrollWidth, leaves: leaves.slice(0, 8).map(describe) };
  });
  if (!found) return null;
  await screenshot(page, `overflow-${label.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}`).catch(() => undefined);
  return `horizontal overflow on "${label}": the page is ${found.scrollWidth}px wide in a ${found.width}px viewport; sticking out (widest first):\n  ${found.leaves.join("\n  ")}`;
}

// ---------------------------------------------------------------------------
// Screenshots and metrics
// ---------------------------------------------------------------------------

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS_DIR, { recursive: true });
  const file = join(SCREENSHOTS_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

/** Merges `values` into web/test-results/metrics.json (other keys are kept). */
export function writeMetrics(values: Record<string, unknown>): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  let current: Record<string, unknown> = {};
  if (existsSync(METRICS_FILE)) {
    try {
      current = JSON.parse(readFileSync(METRICS_FILE, "utf8")) as Record<string, unknown>;
    } catch {
      current = {};
    }
  }
  writeFileSync(METRICS_FILE, `${JSON.stringify({ ...current, ...values, updated_at: new Date().toISOString() }, null, 2)}\n`);
}

export function summarise(samples: number[]): { median: number; p95: number; min: number; max: number; all: number[] } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  const round = (x: number) => Math.round(x * 10) / 10;
  const median =
    sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  return {
    median: round(median),
    p95: round(at(0.95)),
    min: round(sorted[0]),
    max: round(sorted[sorted.length - 1]),
    all: samples.map(round),
  };
}

/** Polls `check` until it returns without throwing (for non-locator conditions). */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = UI_TIMEOUT, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      return await check();
    } catch (error) {
      lastError = error;
    }
    await delay(200);
  }
  throw new Error(`${what} not met within ${timeoutMs} ms: ${(lastError as Error)?.message ?? lastError}`);
}
