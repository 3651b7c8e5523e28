// What a product manager sees in nerve's web console (GET /ui) when she picks dates, builds a
// funnel and asks a question, in headless Chromium, for tests/server/test_console_analysis.py:
// node console_analysis.mjs <chromium> <url with #token=...> <width> <steps,comma,separated>
//   <window> <custom from> <custom to> <question>
// prints JSON: the events panel, the funnel's rows and the answer, for the default dates, for
// "last 7 days" and for the custom days; the events the funnel's step picker offers; the
// page's width against the window's; the console's error messages and failed requests.
import { chromium } from "playwright-core";

const [executablePath, url, width, steps, window, from, to, question] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
  const context = await browser.newContext({ viewport: { width: Number(width), height: 900 } });
  const page = await context.newPage();
  const errors = [];
  const failed = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("console", (message) => { if (message.type() === "error") errors.push(message.text()); });
  page.on("requestfailed", (request) => failed.push(`${request.url()}: ${request.failure()?.errorText}`));
  page.on("response", (response) => {
    if (response.status() >= 400) failed.push(`${response.url()}: ${response.status()}`);
  });
  const rowsOf = (selector) => page.$$eval(`${selector} tbody tr`, (trs) =>
    trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)));
  // a panel's answer for the dates now shown (data-range: the dates its figures are of)
  const settled = (id, since, until) => page.waitForFunction(
    ([id, dates]) => document.getElementById(id).dataset.range === dates,
    [id, `${since}..${until}`], { timeout: 120000 });
  const seen = async () => {
    const range = await page.textContent("#range-text");
    const [since, until] = range.split(" to ").map((part) => part.slice(0, 10));
    for (const id of ["metric-body", "events-body", "funnel-body"]) await settled(id, since, until);
    return {
      range, since, until,
      headings: await page.$$eval(".range-label", (nodes) => nodes.map((n) => n.textContent)),
      events: await rowsOf("#events-body"),
      funnel: await rowsOf("#funnel-body"),
      funnelText: await page.textContent("#funnel-body p"),
      command: await page.textContent("#funnel-body code"),
      metricAxis: await page.$$eval("#metric-body .axis span", (spans) => spans.map((s) => s.textContent)),
    };
  };

  await page.goto(url);
  await page.waitForSelector("body[data-loaded=true]", { timeout: 60000 });
  const offered = await page.$$eval("#funnel-steps .step:first-child option", (options) => options.map((o) => o.value));
  // the steps: two are there, the rest added
  const wanted = steps.split(",");
  for (let i = 2; i < wanted.length; i++) await page.click("#funnel-add");
  for (const [i, step] of wanted.entries()) {
    await page.selectOption(`#funnel-steps .step:nth-child(${i + 1}) select`, step);
  }
  await page.selectOption("#funnel-window", window);
  await page.click("#funnel-form button[type=submit]");
  const initial = await seen();

  await page.selectOption("#range-select", "7");  // the shown funnel follows the dates
  await page.waitForFunction((since) => !document.getElementById("range-text").textContent.startsWith(since),
                             initial.since);
  const week = await seen();

  await page.selectOption("#range-select", "custom");
  await page.fill("#range-from", to);  // the wrong way round first: refused, in words
  await page.fill("#range-to", from);
  await page.click("#range-custom button[type=submit]");
  const refused = await page.textContent("#range-error");
  await page.fill("#range-from", from);
  await page.fill("#range-to", to);
  await page.click("#range-custom button[type=submit]");
  const custom = await seen();

  await page.fill("#ask-question", question);
  await page.click("#ask-form button[type=submit]");
  await page.waitForSelector("#ask-body h3, #ask-body p.error", { timeout: 120000 });
  const answer = {
    text: await page.textContent("#ask-body p"),
    numbers: await rowsOf("#ask-body"),
    lists: await page.$$eval("#ask-body ul", (uls) => uls.map((ul) =>
      [...ul.querySelectorAll("li")].map((li) => li.textContent))),
    headings: await page.$$eval("#ask-body h3", (hs) => hs.map((h) => h.textContent)),
  };
  const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  const clientWidth = await page.evaluate(() => document.documentElement.clientWidth);
  console.log(JSON.stringify({ offered, initial, week, refused, custom, answer, scrollWidth,
                               clientWidth, errors, failed }));
} finally {
  await browser.close();
}
