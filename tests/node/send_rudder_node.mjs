// Send events to a nerve collector with RudderStack's real Node SDK (@rudderstack/rudder-sdk-node),
// with its default options: each batch gzipped, which axios labels
// application/x-www-form-urlencoded (the SDK sets no Content-Type of its own).
// Usage: node send_rudder_node.mjs HOST_URL WRITE_KEY PREFIX COUNT
// Sends COUNT track events (order_completed, valid), one invalid and one unplanned track,
// plus identify/page/screen/group/alias; message ids start with PREFIX. Exits non-zero on
// any delivery error.
import Analytics from '@rudderstack/rudder-sdk-node'

const [host, writeKey, prefix, countText] = process.argv.slice(2)
const count = Number(countText)
const errors = []
const client = new Analytics(writeKey, {
  dataPlaneUrl: host, flushAt: 15, flushInterval: 200, retryCount: 0, logLevel: 'error',
  errorHandler: (err) => errors.push(`${err.message}: ${JSON.stringify(err.response && err.response.data)}`),
})
const delivered = []
// each call's callback runs once its batch got an answer
const send = (call, message) => delivered.push(new Promise((resolve) => {
  client[call](message, (err) => resolve(err))
}))

for (let i = 0; i < count; i++) {
  send('track', {
    userId: `rudder-user-${i % 7}`,
    event: 'order_completed',
    messageId: `${prefix}-track-${i}`,
    properties: { order_id: `o-${i}`, revenue: i + 0.75, currency: 'EUR' },
  })
}
send('track', { userId: 'rudder-user-x', event: 'order_completed', messageId: `${prefix}-invalid`,
  properties: { revenue: 'free' } })
send('track', { anonymousId: 'anon-rudder', event: 'Unplanned Thing', messageId: `${prefix}-unknown` })
send('identify', { userId: 'rudder-user-1', traits: { plan: 'pro' }, messageId: `${prefix}-identify` })
send('page', { userId: 'rudder-user-1', name: 'Pricing', category: 'Docs',
  properties: { path: '/pricing' }, messageId: `${prefix}-page` })
send('screen', { anonymousId: 'anon-rudder', name: 'Home', messageId: `${prefix}-screen` })
send('group', { userId: 'rudder-user-1', groupId: 'acme', traits: { name: 'ACME' },
  messageId: `${prefix}-group` })
send('alias', { userId: 'rudder-user-1', previousId: 'anon-rudder', messageId: `${prefix}-alias` })

const results = await Promise.all(delivered)
const failed = results.filter(Boolean).length
if (errors.length || failed) {
  console.error(`${failed} of ${results.length} calls not delivered: ${[...new Set(errors)].join('; ')}`)
  process.exit(1)
}
console.log(JSON.stringify({ sent: count + 7 }))
