// Send events to a nerve collector with the real @segment/analytics-node client.
// Usage: node send_segment_node.mjs HOST_URL WRITE_KEY PREFIX COUNT
// Sends COUNT track events (order_completed, valid), one invalid and one unplanned track,
// plus identify/page/screen/group/alias; message ids start with PREFIX. Exits non-zero on
// any delivery error.
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, prefix, countText] = process.argv.slice(2)
const count = Number(countText)
const errors = []
const analytics = new Analytics({ writeKey, host, maxEventsInBatch: 15, flushInterval: 200 })
analytics.on('error', (err) => errors.push(String(err && (err.reason || err.message || err))))

for (let i = 0; i < count; i++) {
  analytics.track({
    userId: `node-user-${i % 7}`,
    event: 'order_completed',
    messageId: `${prefix}-track-${i}`,
    properties: { order_id: `o-${i}`, revenue: i + 0.5, currency: 'EUR' },
    context: { app: { version: '3.1.0' } },
  })
}
analytics.track({ userId: 'node-user-x', event: 'order_completed', messageId: `${prefix}-invalid`,
  properties: { revenue: 'free' } })
analytics.track({ anonymousId: 'anon-node', event: 'Unplanned Thing', messageId: `${prefix}-unknown` })
analytics.identify({ userId: 'node-user-1', traits: { plan: 'pro' }, messageId: `${prefix}-identify` })
analytics.page({ userId: 'node-user-1', name: 'Pricing', category: 'Docs',
  properties: { path: '/pricing' }, messageId: `${prefix}-page` })
analytics.screen({ anonymousId: 'anon-node', name: 'Home', messageId: `${prefix}-screen` })
analytics.group({ userId: 'node-user-1', groupId: 'acme', traits: { name: 'ACME' },
  messageId: `${prefix}-group` })
analytics.alias({ userId: 'node-user-1', previousId: 'anon-node', messageId: `${prefix}-alias` })

await analytics.closeAndFlush({ timeout: 20000 })
if (errors.length) {
  console.error(`delivery errors: ${errors.join('; ')}`)
  process.exit(1)
}
console.log(JSON.stringify({ sent: count + 7 }))
