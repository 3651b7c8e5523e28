// Open a page in headless Chromium and report what it did, as JSON on stdout:
// {results: window.results, requests: [{method, url, status}], failed: [{url, error}]}.
// Usage: node drive_analytics_js.mjs CHROMIUM_PATH PAGE_URL USER_AGENT
// Every request the page makes is listed, wherever it goes, so a test can check that
// analytics.js talked to nobody but nerve.
import { chromium } from 'playwright-core'

const [executablePath, url, userAgent] = process.argv.slice(2)
const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] })
try {
  const page = await (await browser.newContext({ userAgent })).newPage()
  const requests = []
  const failed = []
  page.on('response', (r) =>
    requests.push({ method: r.request().method(), url: r.url(), status: r.status() }))
  page.on('requestfailed', (r) => failed.push({ url: r.url(), error: r.failure()?.errorText }))
  page.on('console', (m) => process.stderr.write(`console ${m.type()}: ${m.text()}\n`))
  await page.goto(url)
  await page.waitForFunction(() => document.getElementById('out').textContent === 'done',
    null, { timeout: 30000 })
  const results = await page.evaluate(() => window.results)
  // analytics.js sends with fetch keepalive: let the last responses arrive
  await page.waitForLoadState('networkidle')
  process.stdout.write(JSON.stringify({ results, requests, failed }))
} finally {
  await browser.close()
}
