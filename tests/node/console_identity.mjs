// The console when one person signs out and another signs in in the same tab, for
// tests/server/test_console_identity.py:
// node console_identity.mjs <chromium> <url of /ui> <first token> <second token> <question>
// the first signs in and asks <question>; asks it again, and signs out before that answer
// comes back (it is held); the second signs in, and the held answer is let through. Prints
// JSON: the page's HTML and its inputs' values then, what the second sees, and page errors.
import { chromium } from "playwright-core";

const [executablePath, url, first, second, question] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  const signIn = async (token) => {
    await page.evaluate(() => { delete document.body.dataset.loaded; });
    await page.fill("#token", token);
    await page.click("#login-form button[type=submit]");
    await page.waitForSelector("body[data-loaded=true]", { timeout: 60000 });
  };
  const ask = async () => {
    await page.fill("#ask-question", question);
    await page.click("#ask-form button[type=submit]");
  };
  await page.goto(url);
  await page.waitForSelector("#login:not([hidden])");
  await signIn(first);
  await ask();
  await page.waitForFunction(() => !document.getElementById("ask-body").textContent.startsWith("Asking"),
                             null, { timeout: 120000 });
  const firstAnswer = await page.textContent("#ask-body");
  // asked again, and signed out before the answer is back
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let fetched;
  const answered = new Promise((resolve) => { fetched = resolve; });
  let delivered;
  const through = new Promise((resolve) => { delivered = resolve; });
  await page.route("**/v1/ask", async (route) => {
    const response = await route.fetch();
    fetched();
    await held;
    await route.fulfill({ response });
    delivered();
  });
  await ask();
  await answered;
  await page.click("#logout");
  await page.waitForSelector("#login:not([hidden])");
  await signIn(second);
  release();
  await through;
  await page.waitForTimeout(500);  // the late answer's handler has run by now
  console.log(JSON.stringify({
    firstAnswer,
    html: await page.evaluate(() => document.documentElement.outerHTML),
    values: await page.$$eval("input", (inputs) => inputs.map((i) => i.value)),
    secondSees: await page.innerText("#status-cards"),
    errors,
  }));
} finally {
  await browser.close();
}
