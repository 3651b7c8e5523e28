// Drives nerve's web console (GET /ui) in headless Chromium for tests/server/test_console.py:
// node drive_console.mjs <chromium> <url with #token=...> <width> <metric,metric...>
// prints JSON: the address once loaded, the page's layout at that width, the sign-in form's label, each metric's
// headline and chart as shown, and what the page says once the server stops answering.
import { chromium } from "playwright-core";

const [executablePath, url, width, metrics] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
  const context = await browser.newContext({ viewport: { width: Number(width), height: 800 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(url);
  await page.waitForSelector("body[data-loaded=true]", { timeout: 60000 });
  const shown = async () => {
    await page.waitForFunction(() => document.getElementById("metric-body").textContent !== "…");
    return page.evaluate(() => ({
      headline: document.querySelector("#metric-body p")?.textContent,
      axis: [...document.querySelectorAll("#metric-body .axis span")].map((s) => s.textContent),
      bars: [...document.querySelectorAll("#metric-body svg rect")].map((r) => ({
        title: r.querySelector("title").textContent, height: Number(r.getAttribute("height")) })),
    }));
  };
  const out = {
    href: await page.evaluate(() => location.href),  // the token's fragment taken off it
    scrollWidth: await page.evaluate(() => document.documentElement.scrollWidth),
    clientWidth: await page.evaluate(() => document.documentElement.clientWidth),
    tokenLabels: await page.evaluate(() => [...document.getElementById("token").labels].map((l) => l.textContent)),
    metrics: {},
  };
  for (const name of metrics.split(",")) {
    await page.selectOption("#metric-select", name);
    out.metrics[name] = await shown();
  }
  // the server stops answering: every request to it fails as a stopped server's does
  await page.route("**/v1/**", (route) => route.abort("connectionrefused"));
  await page.selectOption("#metric-select", metrics.split(",")[0]);
  out.stopped = (await shown()).headline;
  out.errors = errors;
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
