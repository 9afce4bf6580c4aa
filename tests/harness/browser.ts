/**
 * @module
 * Headless Chromium for tests, from Debian's `chromium` package (which `.ci/run` installs), driven
 * by playwright-core. Missing Chromium fails loudly with the install hint; it never skips.
 */
import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

export const CHROMIUM_PATH = "/usr/bin/chromium";

export async function launchChromium(): Promise<{ browser: Browser; close(): Promise<void> }> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`Chromium is not installed at ${CHROMIUM_PATH}: run ` +
      "`apt-get install -y --no-install-recommends chromium` (as .ci/run does)");
  }
  // Without the background-networking flags Chromium keeps dialling out of a machine with no network.
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: ["--no-sandbox",
    "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"] }); // playwright gives it a fresh temp profile
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}
