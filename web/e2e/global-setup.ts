/**
 * Runs once before the e2e files: fails fast without a built app, builds the
 * dev server if its binary is missing, and clears the previous run's
 * screenshots (metrics.json is merged into, not cleared).
 */
import { rmSync } from "node:fs";
import { SCREENSHOTS_DIR, assertWebBuilt, chromiumPath, devServerBinary } from "./harness";

export default function setup(): void {
  assertWebBuilt();
  devServerBinary();
  chromiumPath();
  rmSync(SCREENSHOTS_DIR, { recursive: true, force: true });
}
