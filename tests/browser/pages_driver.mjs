// Opens pages in Debian's headless Chromium with every non-local request blocked, for
// tests/browser/test_docs_pages.py and test_demo_layout.py, which own the server and make
// every assertion.
//
// For each page it waits until every expected text shows in the rendered page; optionally it
// then measures an element, resizes the window and measures it again once it changed. It
// reports what the page showed, what it tried to load from elsewhere (blocked) and its script
// errors, as one JSON line on stdout. It never downloads a browser (/usr/bin/chromium).
//
// Usage: node pages_driver.mjs '{"pages": [{"url": ..., "expect": [...], "expandAll": false,
//   "measure": "#chart canvas", "resizeTo": {"width": 700, "height": 500}}], "profile": ...}'

import { createRequire } from "node:module";

const require = createRequire(new URL("../../frontend-types/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const config = JSON.parse(process.argv[2] ?? "{}");
const { pages, profile, timeoutMs = 20_000, executablePath = "/usr/bin/chromium" } = config;

// The flags this machine needs (closed network: no background requests at all).
const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

async function visit(context, { url, expect, expandAll = false, measure, resizeTo }) {
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });
  try {
    await page.goto(url, { waitUntil: "load", timeout: timeoutMs });
    let rendered = true;
    try {
      await page.waitForFunction(
        ([texts, expand]) => {
          if (expand) {
            // The AsyncAPI renderer shows a schema's rules only once it is expanded, and it
            // renders in steps: expand whatever is still collapsed, on every poll.
            for (const button of document.querySelectorAll("button")) {
              if (/expand all/i.test(button.textContent ?? "")) button.click();
            }
          }
          // Swagger UI breaks long paths with zero-width spaces; compare the text as read.
          const shown = document.body.innerText.replace(/[\u200b\u00ad]/g, "");
          return texts.every((text) => shown.includes(text));
        },
        [expect, expandAll],
        { timeout: timeoutMs },
      );
    } catch {
      rendered = false;
    }
    let sizes;
    if (rendered && measure) sizes = await resizeAndMeasure(page, measure, resizeTo);
    const text = await page.evaluate(() => document.body.innerText.replace(/[\u200b\u00ad]/g, ""));
    return { url, rendered, text: text.slice(0, 20_000), problems, sizes };
  } finally {
    await page.close();
  }
}

/** The width of `selector` before and after the window is resized (after: once it moved). */
async function resizeAndMeasure(page, selector, resizeTo) {
  const width = () =>
    page.evaluate((s) => document.querySelector(s)?.getBoundingClientRect().width ?? -1, selector);
  const before = await width();
  await page.setViewportSize(resizeTo);
  try {
    await page.waitForFunction(
      ([s, old]) => (document.querySelector(s)?.getBoundingClientRect().width ?? -1) !== old,
      [selector, before],
      { timeout: timeoutMs },
    );
  } catch {
    // Reported as it is: the test says what was expected.
  }
  return { before, after: await width(), window: resizeTo };
}

async function main() {
  if (!pages || !profile) throw new Error("config needs pages and profile");
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: CHROMIUM_FLAGS,
  });
  const local = [];
  const blocked = [];
  await context.route("**/*", (route) => {
    const target = route.request().url();
    const { protocol, hostname } = new URL(target);
    if (protocol === "data:" || hostname === "127.0.0.1") {
      local.push(target);
      return route.continue();
    }
    blocked.push(target);
    return route.abort("blockedbyclient");
  });
  try {
    const results = [];
    for (const page of pages) results.push(await visit(context, page));
    process.stdout.write(JSON.stringify({ results, local, blocked }) + "\n");
  } finally {
    await context.close();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(String(error?.stack ?? error) + "\n");
    process.exit(1);
  },
);
