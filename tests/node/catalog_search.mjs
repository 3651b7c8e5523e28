// Searches the catalog site's index in headless Chromium as a user does, for
// tests/catalog/test_docs_site.py: node catalog_search.mjs <chromium> <index.html URL> <query>
// types the query, opens the first event it leaves, comes back with the browser's Back,
// and prints JSON: the field's value, the rows shown and the header's count of them,
// after typing and after Back.
import { chromium } from "playwright-core";

const [executablePath, url, query] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage();
  const seen = () => page.evaluate(() => ({
    value: document.getElementById("search").value,
    count: document.getElementById("count").textContent,
    shown: [...document.querySelectorAll("#events tbody tr")].filter((r) => !r.hidden)
      .map((r) => r.querySelector("a").textContent),
  }));
  await page.goto(url);
  await page.fill("#search", query);
  const typed = await seen();
  await Promise.all([page.waitForNavigation(), page.click("#events tbody tr:not([hidden]) a")]);
  await page.goBack();
  await page.waitForTimeout(500);
  console.log(JSON.stringify({ typed, back: await seen() }));
} finally {
  await browser.close();
}
