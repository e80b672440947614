import { defineConfig } from "vitest/config";

// End-to-end tests: real headless Chromium against a real dev server.
// See e2e/harness.ts (build the app first: npm run build && npm run e2e).
export default defineConfig({
  test: {
    include: ["e2e/**/*.e2e.ts"],
    environment: "node",
    testTimeout: 60_000,
    hookTimeout: 180_000,
    fileParallelism: false,
    globalSetup: ["e2e/global-setup.ts"],
    // A slow CI machine: expect.poll waits up to 15 s (default 1 s).
    expect: { poll: { timeout: 15_000, interval: 100 } },
  },
});
