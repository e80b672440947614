import { defineConfig } from "vitest/config";

// End-to-end tests: real headless Chromium against a real dev server.
export default defineConfig({
  test: {
    include: ["e2e/**/*.e2e.ts"],
    environment: "node",
    testTimeout: 60_000,
    hookTimeout: 180_000,
    fileParallelism: false,
  },
});
