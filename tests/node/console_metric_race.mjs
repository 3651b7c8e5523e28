// The console's metric picker when answers come back out of order, for
// tests/server/test_console.py: node console_metric_race.mjs <chromium> <url> <slow> <fast>
// picks <slow>, then <fast> before <slow>'s query has answered; <slow>'s answer is held
// until <fast>'s is drawn, then let through. Prints JSON: the metric picked, the chart's
// description and the headline shown once both answers are in, and page errors.
import { chromium } from "playwright-core";

const [executablePath, url, slow, fast] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(url);
  await page.waitForSelector("body[data-loaded=true]", { timeout: 60000 });
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let slowDone;
  const slowAnswered = new Promise((resolve) => { slowDone = resolve; });
  await page.route("**/v1/metrics/query", async (route) => {
    const asked = JSON.parse(route.request().postData()).metrics[0];
    const response = await route.fetch();
    if (asked === slow) await held;
    await route.fulfill({ response });
    if (asked === slow) slowDone();
  });
  await page.selectOption("#metric-select", slow);
  await page.selectOption("#metric-select", fast);
  await page.waitForFunction(() => document.querySelector("#metric-body svg") !== null);
  release();
  await slowAnswered;
  await page.waitForTimeout(500);  // the late answer's handler has run by now
  console.log(JSON.stringify(await page.evaluate(() => ({
    picked: document.getElementById("metric-select").value,
    chart: document.querySelector("#metric-body svg")?.getAttribute("aria-label"),
    headline: document.querySelector("#metric-body p")?.textContent,
  })).then((seen) => ({ ...seen, errors }))));
} finally {
  await browser.close();
}
