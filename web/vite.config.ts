import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` proxies /api to a dev server on :3000 (override with
// FLOWCHAT_API_PROXY), so the app and the API share an origin as in production.
export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/api": process.env.FLOWCHAT_API_PROXY ?? "http://127.0.0.1:3000",
    },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
  },
  test: {
    environment: "jsdom",
    setupFiles: ["./src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
    css: false,
  },
});
