'use strict';
// Run: node --test examples/backends/node/
const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { verify, createReceiver } = require('./events.js');

function sign(secret, ts, body) {
  return 'sha256=' + crypto.createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex');
}

test('events receiver checks signatures and drops repeated ids', async () => {
  const got = [];
  const server = createReceiver('whsec', (ev) => got.push(ev));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}/`;
  const body = JSON.stringify({ id: 'evt_1', event: 'order.requested', timestamp: new Date().toISOString(), data: { sku: 'A1' }, webhookId: 'w1' });
  const ts = String(Math.floor(Date.now() / 1000));
  const post = (sig) => fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-storyflow-timestamp': ts, 'x-storyflow-signature': sig } });
  assert.equal((await post(sign('whsec', ts, body))).status, 204);
  assert.equal((await post(sign('whsec', ts, body))).status, 204);
  assert.equal((await post(sign('wrong', ts, body))).status, 401);
  assert.equal(got.length, 1);
  assert.equal(got[0].data.sku, 'A1');
  assert.equal(verify('whsec', String(Number(ts) - 3600), sign('whsec', String(Number(ts) - 3600), body), Buffer.from(body)), false);
  await new Promise((r) => server.close(r));
});
