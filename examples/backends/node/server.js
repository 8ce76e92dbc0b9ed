'use strict';
// Example storyflow webhook service in plain Node.js (no npm packages):
// a CRM lookup (/crm) for a customer-support story and an order desk
// (/orders) for an order-taking story. It answers storyflow's verification
// request and checks the X-Storyflow-Signature of every webhook call.
//
//   WEBHOOK_TOKEN=dev-token PORT=8082 node examples/backends/node/server.js
//
// Environment: ADDR (host:port, default 127.0.0.1:8082) or HOST and PORT;
// WEBHOOK_TOKEN (default dev-token).

const http = require('node:http');
const crypto = require('node:crypto');

const HEADER_TIMESTAMP = 'x-storyflow-timestamp';
const HEADER_SIGNATURE = 'x-storyflow-signature';
const SIGNATURE_PREFIX = 'sha256=';
const MAX_CLOCK_SKEW_SECONDS = 5 * 60;
const MAX_BODY_BYTES = 1 << 20;

const customers = {
  'ann@example.com': { name: 'Ann', plan: 'pro', openOrders: 2 },
  'bob@example.com': { name: 'Bob', plan: 'free', openOrders: 0 },
  'carol@example.com': { name: 'Carol', plan: 'enterprise', openOrders: 1 },
};

// Prices in cents.
const catalog = {
  espresso: { name: 'Espresso beans 1kg', price: 2490,
    imageUrl: 'https://shop.example.com/img/espresso.jpg', pageUrl: 'https://shop.example.com/p/espresso' },
  filter: { name: 'Filter roast 500g', price: 1290,
    imageUrl: 'https://shop.example.com/img/filter.jpg', pageUrl: 'https://shop.example.com/p/filter' },
  grinder: { name: 'Hand grinder', price: 5900,
    imageUrl: 'https://shop.example.com/img/grinder.jpg', pageUrl: 'https://shop.example.com/p/grinder' },
};

// jsonLog writes one JSON line per event to stderr.
const jsonLog = (level, msg, fields = {}) =>
  console.error(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }));

// sign returns the X-Storyflow-Signature value: hex HMAC-SHA256 of
// "<timestamp>.<raw body>" keyed by the token.
function sign(token, timestamp, body) {
  const mac = crypto.createHmac('sha256', token);
  mac.update(`${timestamp}.`);
  mac.update(body);
  return SIGNATURE_PREFIX + mac.digest('hex');
}

// safeEqual compares two strings in constant time (for equal lengths).
function safeEqual(a, b) {
  const ab = Buffer.from(String(a));
  const bb = Buffer.from(String(b));
  return ab.length === bb.length && crypto.timingSafeEqual(ab, bb);
}

// checkSignature returns null when the request is authentic, else a reason.
function checkSignature(token, headers, body, nowSeconds) {
  if (!token) return null;
  const ts = headers[HEADER_TIMESTAMP];
  const sig = headers[HEADER_SIGNATURE];
  if (!ts || !sig) return 'missing signature headers';
  if (!/^-?\d+$/.test(ts)) return 'malformed timestamp';
  if (Math.abs(nowSeconds - Number(ts)) > MAX_CLOCK_SKEW_SECONDS) {
    return 'timestamp outside the 5 minute window';
  }
  if (!sig.startsWith(SIGNATURE_PREFIX)) return 'signature must start with sha256=';
  const hex = sig.slice(SIGNATURE_PREFIX.length);
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return 'malformed signature';
  const want = crypto.createHmac('sha256', token).update(`${ts}.`).update(body).digest();
  if (!crypto.timingSafeEqual(Buffer.from(hex, 'hex'), want)) return 'signature mismatch';
  return null;
}

const titleCase = (s) => (s ? s[0].toUpperCase() + s.slice(1) : s);
const money = (cents) => `$${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
const str = (v) => (typeof v === 'string' ? v : '');

// crm looks the chat's email up; the story routes on customer, plan,
// customer_name, open_orders and lookup_error (null removes it).
function crm(req) {
  const attrs = req.attributes || {};
  const userAttrs = req.userAttributes || {};
  const email = (str(attrs.email) || str(userAttrs.default_email)).trim().toLowerCase();
  if (!email) {
    return { attributes: {
      customer: 'no',
      lookup_error: 'no email in attributes.email or userAttributes.default_email',
    } };
  }
  const c = Object.hasOwn(customers, email) ? customers[email] : null;
  if (!c) {
    // Unknown: no message, the story decides what to say.
    return { attributes: { customer: 'no', customer_name: null, lookup_error: null } };
  }
  const responses = [{ type: 'text', message: `Welcome back, ${c.name}! You are on the ${titleCase(c.plan)} plan.` }];
  if (c.openOrders > 0) {
    responses.push({ type: 'text', delay: 500,
      message: `You have ${c.openOrders} open ${c.openOrders === 1 ? 'order' : 'orders'}.` });
  }
  return {
    responses,
    attributes: { customer: 'yes', plan: c.plan, customer_name: c.name, open_orders: c.openOrders, lookup_error: null },
  };
}

function findProduct(name) {
  const n = str(name).trim().toLowerCase();
  if (!n) return null;
  if (Object.hasOwn(catalog, n)) return [n, catalog[n]];
  for (const [key, p] of Object.entries(catalog)) {
    if (p.name.toLowerCase() === n) return [key, p];
  }
  return null;
}

// quantity accepts a number or a numeric string holding a whole number 1..99.
function quantity(v) {
  let n;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && v.trim() !== '') n = Number(v.trim());
  else return null;
  return Number.isInteger(n) && n >= 1 && n <= 99 ? n : null;
}

function createOrders() {
  let next = 1001;
  const byMessage = new Map(); // storyflow retries with the same messageId: one order per message

  function placeOrder(messageId) {
    if (messageId && byMessage.has(messageId)) return byMessage.get(messageId);
    const id = `ORD-${String(next++).padStart(6, '0')}`;
    if (messageId) {
      if (byMessage.size >= 10000) byMessage.clear();
      byMessage.set(messageId, id);
    }
    return id;
  }

  return function orders(req) {
    const attrs = req.attributes || {};
    const found = findProduct(attrs.product);
    if (!found) {
      const name = str(attrs.product);
      const short = name.length > 64 ? `${name.slice(0, 63)}…` : name;
      return {
        responses: [{
          type: 'quickReplies',
          title: name ? `Sorry, we don't sell "${short}". Which product would you like?` : 'Which product would you like?',
          buttons: Object.keys(catalog).map((k) => ({ type: 'postback', title: k, value: k })),
        }],
        attributes: { order_error: 'unknown_product', product: null, order_id: null, total: null },
      };
    }
    const [key, p] = found;
    const qty = quantity(attrs.quantity);
    if (qty === null) {
      return {
        responses: [{ type: 'text', message: 'Please tell me a quantity from 1 to 99.' }],
        attributes: { order_error: 'bad_quantity', quantity: null, order_id: null, total: null },
      };
    }
    const totalCents = p.price * qty;
    const orderId = placeOrder(req.messageId);
    const total = money(totalCents);
    return {
      responses: [
        { type: 'cards', elements: [{
          title: p.name,
          subtitle: `${qty} × ${money(p.price)} = ${total}`,
          imageUrl: p.imageUrl,
          buttons: [{ type: 'url', title: 'Details', value: p.pageUrl }],
        }] },
        { type: 'quickReplies', title: `Order ${orderId}: ${total} in total. Shall I place it?`,
          buttons: [
            { type: 'postback', title: 'Confirm', value: 'confirm' },
            { type: 'postback', title: 'Cancel', value: 'cancel' },
          ] },
      ],
      attributes: { product: key, quantity: qty, order_id: orderId, total: totalCents / 100,
        total_text: total, currency: 'USD', order_error: null },
    };
  };
}

function sendJSON(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const sendError = (res, status, error, code) => sendJSON(res, status, { error, code });

function readBody(req) {
  return new Promise((resolve, reject) => {
    let chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      if (chunks === null) return; // already too large: drain and drop
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        chunks = null;
        reject(Object.assign(new Error('body too large'), { status: 413 }));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => chunks && resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// createServer returns an http.Server (not yet listening) for the given token.
// An empty token turns signature and verification checks off.
// options.log(level, msg, fields) replaces the JSON logger.
function createServer(token, options = {}) {
  const log = options.log || jsonLog;
  const routes = { '/crm': crm, '/orders': createOrders() };

  function verify(res, url, path) {
    const challenge = url.searchParams.get('challenge');
    if (!challenge) return sendError(res, 400, 'missing challenge', 'invalid_request');
    if (token && !safeEqual(url.searchParams.get('token') || '', token)) {
      log('warn', 'verification refused: token mismatch', { path });
      return sendError(res, 403, 'token does not match', 'bad_token');
    }
    log('info', 'verification answered', { path });
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    return res.end(challenge);
  }

  async function webhook(req, res, path, handle) {
    let body;
    try {
      body = await readBody(req);
    } catch (err) {
      return sendError(res, err.status || 400, err.status ? err.message : 'cannot read body',
        err.status ? 'too_large' : 'invalid_request');
    }
    const reason = checkSignature(token, req.headers, body, Math.floor(Date.now() / 1000));
    if (reason) {
      log('warn', 'webhook refused', { path, err: reason });
      return sendError(res, 401, reason, 'bad_signature');
    }
    let payload;
    try {
      payload = JSON.parse(body.toString('utf8'));
    } catch (err) {
      return sendError(res, 400, `body is not a webhook request: ${err.message}`, 'invalid_json');
    }
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
      return sendError(res, 400, 'body is not a webhook request: not an object', 'invalid_json');
    }
    const answer = handle(payload);
    log('info', 'webhook answered', {
      path, chatId: payload.chatId, messageId: payload.messageId, node: payload.node && payload.node.id,
      responses: (answer.responses || []).length, attributes: Object.keys(answer.attributes || {}).length,
    });
    return sendJSON(res, 200, answer);
  }

  return http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const path = url.pathname;
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      return sendJSON(res, 200, { status: 'ok' });
    }
    const handle = Object.hasOwn(routes, path) ? routes[path] : null;
    if (!handle) return sendError(res, 404, 'not found', 'not_found');
    if (req.method === 'GET' || req.method === 'HEAD') return verify(res, url, path);
    if (req.method === 'POST') {
      return webhook(req, res, path, handle).catch((err) => {
        log('error', 'webhook failed', { path, err: String(err) });
        if (!res.headersSent) sendError(res, 500, 'internal error', 'internal');
      });
    }
    res.setHeader('Allow', 'GET, HEAD, POST');
    return sendError(res, 405, 'method not allowed', 'method_not_allowed');
  });
}

module.exports = { createServer, sign, checkSignature };

if (require.main === module) {
  const token = process.env.WEBHOOK_TOKEN || 'dev-token';
  let host = process.env.HOST || '127.0.0.1';
  let port = Number(process.env.PORT || 8082);
  if (process.env.ADDR) {
    const i = process.env.ADDR.lastIndexOf(':');
    host = process.env.ADDR.slice(0, i) || host;
    port = Number(process.env.ADDR.slice(i + 1));
  }
  const log = jsonLog;
  if (token === 'dev-token') {
    log('warn', 'using the default token dev-token; set WEBHOOK_TOKEN for anything but local development');
  }
  const server = createServer(token);
  server.listen(port, host, () => {
    const a = server.address();
    log('info', 'webhook backend listening', { addr: `${a.address}:${a.port}` });
  });
  const stop = () => {
    log('info', 'shutting down');
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 10000).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
