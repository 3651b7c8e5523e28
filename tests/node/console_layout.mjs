// How nerve's web console (GET /ui) lays out its tables in headless Chromium, for
// tests/server/test_console.py: node console_layout.mjs <chromium> <url with #token=...> <width>
// prints JSON: per table (by its section), each column's header and whether all of it is
// in view without scrolling its panel sideways; the id of the element that has the
// keyboard's focus; each badge's text and the contrast ratio of its colours; the console's error messages and the requests that failed or were
// answered 4xx/5xx (a 401 is expected only with a wrong token).
import { chromium } from "playwright-core";

const [executablePath, url, width] = process.argv.slice(2);
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
  await page.goto(url);
  // loaded, or asking for a token
  await page.waitForSelector("body[data-loaded=true], #login:not([hidden])", { timeout: 60000 });
  await page.waitForTimeout(500);  // the browser's own requests (an icon) after the load
  const tables = await page.evaluate(() => [...document.querySelectorAll("main table")].map((table) => {
    const view = table.closest(".scroll").getBoundingClientRect();
    return {
      section: table.closest("section").id,
      columns: [...table.querySelectorAll("th")].map((th) => {
        const box = th.getBoundingClientRect();
        return { header: th.textContent, inView: box.left >= view.left - 1 && box.right <= view.right + 1 };
      }),
    };
  }));
  const focused = await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName);
  // each badge's text against its background: the WCAG contrast ratio
  const badges = await page.evaluate(() => {
    const luminance = (css) => {
      const [r, g, b] = css.match(/[\d.]+/g).slice(0, 3).map((v) => {
        const c = Number(v) / 255;
        return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    return [...document.querySelectorAll(".badge")].map((badge) => {
      const style = getComputedStyle(badge);
      const [hi, lo] = [luminance(style.color), luminance(style.backgroundColor)].sort((a, b) => b - a);
      return { text: badge.textContent, contrast: (hi + 0.05) / (lo + 0.05) };
    });
  });
  console.log(JSON.stringify({ tables, focused, badges, errors, failed }));
} finally {
  await browser.close();
}
