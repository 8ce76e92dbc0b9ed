'use strict';
// An example receiver of storyflow's event webhooks (built-in modules only):
// checks each request's signature, drops events it has seen (by id: a
// delivery may repeat) and logs the rest.
//
//   EVENTS_SECRET=whsec node examples/backends/node/events.js   # 127.0.0.1:8084
const http = require('node:http');
const crypto = require('node:crypto');

const MAX_SKEW_SECONDS = 300;

// verify checks X-Storyflow-Signature: "sha256=" and the hex HMAC-SHA256
// of "<timestamp>.<body>" keyed by the subscription's secret.
function verify(secret, timestamp, signature, body, nowSeconds = Math.floor(Date.now() / 1000)) {
  const ts = Number(timestamp);
  if (!Number.isInteger(ts) || Math.abs(nowSeconds - ts) > MAX_SKEW_SECONDS) return false;
  if (typeof signature !== 'string' || !signature.startsWith('sha256=')) return false;
  const want = crypto.createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
  const got = Buffer.from(signature.slice(7), 'hex');
  return got.length === want.length && crypto.timingSafeEqual(got, want);
}

function createReceiver(secret, handle) {
  const seen = new Set(); // a real service keeps this in its database
  return http.createServer((req, res) => {
    if (req.method !== 'POST') { res.writeHead(405).end(); return; }
    const chunks = [];
    let size = 0;
    req.on('data', (c) => { size += c.length; if (size <= 1 << 20) chunks.push(c); });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (secret && !verify(secret, req.headers['x-storyflow-timestamp'], req.headers['x-storyflow-signature'], body)) {
        res.writeHead(401).end('bad signature');
        return;
      }
      let ev;
      try { ev = JSON.parse(body.toString('utf8')); } catch { res.writeHead(400).end('not JSON'); return; }
      if (!ev || typeof ev.id !== 'string') { res.writeHead(400).end('not an event'); return; }
      if (!seen.has(ev.id)) {
        seen.add(ev.id);
        handle(ev);
      }
      res.writeHead(204).end(); // answer fast: storyflow waits at most 10s
    });
  });
}

module.exports = { verify, createReceiver };

if (require.main === module) {
  const secret = process.env.EVENTS_SECRET || '';
  const [host, port] = (process.env.ADDR || '127.0.0.1:8084').split(':');
  createReceiver(secret, (ev) => console.log(`event ${ev.id} ${ev.event}`, JSON.stringify(ev.data)))
    .listen(Number(port), host, () => console.log(`events receiver on http://${host}:${port}`));
}
