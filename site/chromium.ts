/**
 * The one Chromium the kit drives: Debian's, never a browser downloaded by
 * puppeteer or playwright. Diagram rendering and the browser test run when it is
 * installed; without it they are skipped, except in CI (`CI=true`), where its
 * absence is a failure, because CI installs it on purpose.
 */
import { existsSync } from "node:fs";

export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Headless flags: no sandbox (containers), no GPU, and nothing that phones home. */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export type ChromiumAvailability =
  | { available: true }
  | { available: false; /** True in CI, where a missing Chromium must fail rather than skip. */ required: boolean; reason: string };

export function chromiumAvailability(): ChromiumAvailability {
  if (existsSync(CHROMIUM_PATH)) return { available: true };
  const required = process.env.CI === "true";
  return {
    available: false,
    required,
    reason: `${CHROMIUM_PATH} not found (install Debian's chromium: apt-get install chromium)${required ? "; CI=true requires it" : ""}`,
  };
}
