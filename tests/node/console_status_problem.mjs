// The console's pipeline panel when the server says its log cannot be written, for
// tests/server/test_console.py: node console_status_problem.mjs <chromium> <url> <problem>
// The real GET /v1/status answer is passed through with log.write_problem set to
// <problem> (a full disk is made for real in tests/server/test_faults.py). Prints JSON:
// the panel's error line and page errors.
import { chromium } from "playwright-core";

const [executablePath, url, problem] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.route("**/v1/status", async (route) => {
    // the server's own answer, however long a loaded machine takes (30 s by default)
    const response = await route.fetch({ timeout: 120000 });
    const body = await response.json();
    body.log.write_problem = problem;
    await route.fulfill({ response, json: body });
  });
  await page.goto(url);
  await page.waitForSelector("body[data-loaded=true]", { timeout: 150000 });
  console.log(JSON.stringify({
    error: await page.textContent("#status-error"),
    errors,
  }));
} finally {
  await browser.close();
}
