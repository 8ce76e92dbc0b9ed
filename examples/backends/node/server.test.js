'use strict';
// Run: node --test examples/backends/node/
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { createServer, sign } = require('./server.js');

const TOKEN = 'test-token';
let server;
let base;

before(async () => {
  server = createServer(TOKEN, { log: () => {} });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => new Promise((resolve) => server.close(resolve)));

function chatBody(attributes, userAttributes = {}) {
  return {
    chatId: 'chat-1',
    messageId: '6f1d2c1e-1b7a-4c39-9c9e-5d1f1b2f0a01',
    userId: 'user-1',
    externalId: 'ext-1',
    node: { id: 'check_customer', name: 'Check customer', type: 'WEBHOOK', webhookId: 'wh-1', webhookName: 'crm' },
    userAttributes,
    attributes,
  };
}

// post sends a body signed the way storyflow signs it.
async function post(path, body, { token = TOKEN, at = Date.now(), signature } = {}) {
  const raw = JSON.stringify(body);
  const ts = String(Math.floor(at / 1000));
  const res = await fetch(base + path, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'X-Storyflow-Timestamp': ts,
      'X-Storyflow-Signature': signature ?? sign(token, ts, raw),
    },
    body: raw,
  });
  return { status: res.status, json: await res.json() };
}

test('verification echoes the challenge when the token matches', async () => {
  const res = await fetch(`${base}/crm?challenge=abc123&token=${TOKEN}`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain/);
  assert.equal(await res.text(), 'abc123');
});

test('verification is refused with a wrong or missing token', async () => {
  for (const q of ['challenge=abc123&token=nope', 'challenge=abc123']) {
    const res = await fetch(`${base}/crm?${q}`);
    assert.equal(res.status, 403, q);
    assert.equal((await res.json()).code, 'bad_token');
  }
  assert.equal((await fetch(`${base}/orders?token=${TOKEN}`)).status, 400);
});

test('signed CRM call for a known customer', async () => {
  const { status, json } = await post('/crm', chatBody({ email: 'ann@example.com' }));
  assert.equal(status, 200);
  assert.deepEqual(json.attributes, {
    customer: 'yes', plan: 'pro', customer_name: 'Ann', open_orders: 2, lookup_error: null,
  });
  assert.deepEqual(json.responses[0], { type: 'text', message: 'Welcome back, Ann! You are on the Pro plan.' });
  assert.equal(json.responses[1].message, 'You have 2 open orders.');
});

test('signed CRM call falls back to userAttributes.default_email; unknown gets no responses', async () => {
  let r = await post('/crm', chatBody({}, { default_email: 'bob@example.com' }));
  assert.equal(r.json.attributes.plan, 'free');
  assert.equal(r.json.responses.length, 1);

  r = await post('/crm', chatBody({ email: 'zed@example.com' }));
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { attributes: { customer: 'no', customer_name: null, lookup_error: null } });
});

test('bad, expired or missing signatures get 401', async () => {
  const body = chatBody({ email: 'ann@example.com' });
  const cases = [
    [{ token: 'other' }, 'signature mismatch'],
    [{ at: Date.now() - 6 * 60 * 1000 }, 'timestamp outside the 5 minute window'],
    [{ signature: 'sha256=' + '0'.repeat(64) }, 'signature mismatch'],
    [{ signature: 'deadbeef' }, 'signature must start with sha256='],
  ];
  for (const [opts, error] of cases) {
    const { status, json } = await post('/crm', body, opts);
    assert.equal(status, 401, error);
    assert.deepEqual(json, { error, code: 'bad_signature' });
  }
  const res = await fetch(`${base}/crm`, { method: 'POST', body: JSON.stringify(body) });
  assert.equal(res.status, 401);
  assert.equal((await res.json()).error, 'missing signature headers');
});

test('orders: card and confirm/cancel quick replies; retries keep the order id', async () => {
  const body = chatBody({ product: 'filter', quantity: '3' });
  body.messageId = 'order-msg-1';
  const first = await post('/orders', body);
  assert.equal(first.status, 200);
  const { responses, attributes } = first.json;
  assert.equal(attributes.total, 38.7);
  assert.equal(attributes.total_text, '$38.70');
  assert.match(attributes.order_id, /^ORD-\d{6}$/);
  assert.equal(attributes.order_error, null);
  assert.deepEqual(responses.map((r) => r.type), ['cards', 'quickReplies']);
  assert.equal(responses[0].elements[0].subtitle, '3 × $12.90 = $38.70');
  assert.deepEqual(responses[1].buttons.map((b) => b.value), ['confirm', 'cancel']);

  const retry = await post('/orders', body);
  assert.equal(retry.json.attributes.order_id, attributes.order_id);

  const unknown = await post('/orders', chatBody({ product: 'tea', quantity: 1 }));
  assert.equal(unknown.json.attributes.order_error, 'unknown_product');
  assert.equal(unknown.json.responses[0].type, 'quickReplies');
});

test('healthz', async () => {
  const res = await fetch(`${base}/healthz`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: 'ok' });
});
