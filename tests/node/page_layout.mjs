// How pages lay out in headless Chromium at a given width, for the tests of static pages
// (tests/catalog/test_docs_site.py): node page_layout.mjs <chromium> <width> <url>...
// prints JSON, one entry per URL: the page's scroll and client widths, the form
// controls that have neither a <label> nor an aria-label, and for each table the width
// of its first column and the width its panel shows without scrolling sideways.
import { chromium } from "playwright-core";

const [executablePath, width, ...urls] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
  const context = await browser.newContext({ viewport: { width: Number(width), height: 800 } });
  const page = await context.newPage();
  const out = [];
  for (const url of urls) {
    await page.goto(url);
    out.push({ url, ...(await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      clientWidth: document.documentElement.clientWidth,
      unlabeled: [...document.querySelectorAll("input, select, textarea")]
        .filter((c) => !c.labels.length && !c.getAttribute("aria-label")).map((c) => c.id),
      tables: [...document.querySelectorAll("table")].map((t) => ({
        firstColumn: t.querySelector("th").getBoundingClientRect().width,
        shown: (t.closest(".scroll") || t.parentElement).clientWidth,
      })),
    }))) });
  }
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
