// Drives nerve's web console (GET /ui) in headless Chromium on a fake clock, for
// tests/server/test_console.py: node console_clock.mjs <chromium> <url with #token=...>
// prints JSON: the metric chart's accessible name, the "newest event received" card, and
// both again once the server stops answering and ten minutes pass.
import { chromium } from "playwright-core";

const [executablePath, url] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.clock.install();
  await page.goto(url);
  await page.waitForSelector("body[data-loaded=true]", { timeout: 60000 });
  const seen = () => page.evaluate(() => {
    const card = [...document.querySelectorAll("#status-cards .card")]
      .find((c) => c.querySelector(".label").textContent === "newest event received");
    const svg = document.querySelector("#metric-body svg");
    return {
      newest: card.querySelector(".value").textContent,
      chart: { role: svg.getAttribute("role"), label: svg.getAttribute("aria-label") },
      error: document.getElementById("status-error").textContent,
    };
  });
  const before = await seen();
  // the server stops answering: every request to it fails as a stopped server's does
  await page.route("**/v1/**", (route) => route.abort("connectionrefused"));
  await page.clock.fastForward("10:00");
  await page.clock.runFor(1000);
  // the refused requests settle in real time: on a loaded machine, give them up to 10 s
  for (let i = 0; i < 100; i++) {
    const said = await page.evaluate(() => document.getElementById("status-error").textContent);
    if (said !== "") break;
    await new Promise((resolve) => setTimeout(resolve, 100));
    await page.clock.runFor(100);
  }
  const after = await seen();
  console.log(JSON.stringify({ before, after, errors }));
} finally {
  await browser.close();
}
