#!/usr/bin/env node
// Autobahn|JS over HTTP long-poll (its `longpoll` transport) against wampring.
//
// Owned by the interop test harness (tests/interop/**, tests/interop.rs).
// Node has no XMLHttpRequest, which Autobahn's long-poll transport uses: the xmlhttprequest-ssl
// package (pinned in package.json) provides it as a global.
//
// Why a separate, smaller script than client.js: Autobahn's long-poll transport sends every
// WAMP message as its own POST, several of them in parallel when the session sends them in one
// go (e.g. a callee's progressive YIELDs, or a burst of PUBLISHes); those requests travel on
// separate connections and may reach the router in any order, so client.js's ordering
// assertions cannot hold over it. Here every step awaits the answer to what it sent before it
// sends more; receiving (one `receive` at a time) keeps the router's order.
//
// Steps (sessions A and B over long-poll, W over WebSocket): register/call both ways between
// long-poll sessions, an application error, progressive results (callee W over WebSocket,
// caller B over long-poll: the progressive RESULTs come in order through `receive`),
// subscribe/publish with acknowledge, wamp.session.get's transport type, a clean close.
// Each step prints `ok <step>`; the first failure prints `FAIL <step>: <reason>`; `PASS` at the
// end. A hard timeout guarantees exit.
//
// Usage: node longpoll.js --url http://127.0.0.1:8080/ws --ws-url ws://127.0.0.1:8080/ws
//        --realm realm1

'use strict';

global.XMLHttpRequest = require('xmlhttprequest-ssl').XMLHttpRequest;
const autobahn = require('autobahn');

const HARD_TIMEOUT_MS = 60000;
const STEP_TIMEOUT_MS = 15000;

setTimeout(() => {
  process.stdout.write(`FAIL hard timeout: ${HARD_TIMEOUT_MS} ms\n`, () => process.exit(1));
}, HARD_TIMEOUT_MS).unref();

let current = 'start';
function step(name) { current = name; }
function ok(name) { process.stdout.write(`ok ${name}\n`); }
function check(cond, what) { if (!cond) throw new Error(what); }

function withTimeout(promise, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), STEP_TIMEOUT_MS)),
  ]);
}

function parseArgs(argv) {
  const out = { url: null, wsUrl: null, realm: 'realm1' };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === '--url') out.url = v;
    else if (k === '--ws-url') out.wsUrl = v;
    else if (k === '--realm') out.realm = v;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!out.url || !out.wsUrl) throw new Error('--url and --ws-url are required');
  return out;
}

// Joins `realm`; resolves to {conn, session, closed}.
function connect(transport, realm, name) {
  return new Promise((resolve, reject) => {
    let resolveClosed;
    const closed = new Promise((r) => { resolveClosed = r; });
    let joined = false;
    const conn = new autobahn.Connection({
      realm,
      transports: [transport],
      max_retries: 0,
      retry_if_unreachable: false,
      use_es6_promises: true,
    });
    conn.onopen = (session) => {
      joined = true;
      resolve({ name, conn, session, closed });
    };
    conn.onclose = (reason, details) => {
      resolveClosed({ reason, details });
      if (!joined) reject(new Error(`session ${name} closed before WELCOME: ${reason} ${JSON.stringify(details)}`));
      return true;
    };
    conn.open();
  });
}

// As client.js: progressive results need a when.js deferred (d.notify).
function callWithProgress(session, procedure, args, onProgress) {
  const saved = session._defer;
  session._defer = autobahn.when.defer;
  let p;
  try {
    p = session.call(procedure, args, {}, { receive_progress: true });
  } finally {
    session._defer = saved;
  }
  return new Promise((resolve, reject) => p.then(resolve, reject, onProgress));
}

async function scenario(args) {
  const lp = { type: 'longpoll', url: args.url };
  step('open');
  const A = await withTimeout(connect(lp, args.realm, 'A'), 'A joins over long-poll');
  const B = await withTimeout(connect(lp, args.realm, 'B'), 'B joins over long-poll');
  const W = await withTimeout(connect({ type: 'websocket', url: args.wsUrl }, args.realm, 'W'), 'W joins');
  check(A.session.id !== B.session.id, 'two sessions');
  ok('open');

  step('call');
  await withTimeout(A.session.register('com.lp.add', (a) => a[0] + a[1]), 'REGISTERED add');
  let res = await withTimeout(B.session.call('com.lp.add', [2, 3]), 'RESULT add');
  check(res === 5, `add returned ${JSON.stringify(res)}, want 5`);
  await withTimeout(B.session.register('com.lp.upper', (a) => String(a[0]).toUpperCase()), 'REGISTERED upper');
  res = await withTimeout(A.session.call('com.lp.upper', ['ünïcode']), 'RESULT upper');
  check(res === 'ÜNÏCODE', `upper returned ${JSON.stringify(res)}`);
  res = await withTimeout(W.session.call('com.lp.add', [40, 2]), 'RESULT add from WebSocket');
  check(res === 42, `add from W returned ${JSON.stringify(res)}, want 42`);
  ok('call');

  step('error');
  await withTimeout(A.session.register('com.lp.fail', () => {
    throw new autobahn.Error('com.lp.error.nope', ['no'], { why: 'test' });
  }), 'REGISTERED fail');
  let err = null;
  try {
    await withTimeout(B.session.call('com.lp.fail'), 'ERROR fail');
  } catch (e) {
    err = e;
  }
  check(err && err.error === 'com.lp.error.nope', `call error ${JSON.stringify(err)}, want com.lp.error.nope`);
  ok('error');

  step('progressive_results');
  await withTimeout(W.session.register('com.lp.progress', (a, kw, details) => {
    if (details.progress) for (const i of [1, 2, 3]) details.progress([i]);
    return 4;
  }), 'REGISTERED progress');
  const got = [];
  res = await withTimeout(callWithProgress(B.session, 'com.lp.progress', [], (v) => got.push(v)),
    'RESULT progress');
  check(JSON.stringify(got) === '[1,2,3]', `progressive results ${JSON.stringify(got)}, want [1,2,3]`);
  check(res === 4, `final result ${JSON.stringify(res)}, want 4`);
  ok('progressive_results');

  step('pubsub');
  const events = [];
  let gotEvent;
  const eventCame = new Promise((r) => { gotEvent = r; });
  await withTimeout(B.session.subscribe('com.lp.topic', (a, kw) => { events.push([a, kw]); gotEvent(); }),
    'SUBSCRIBED');
  await withTimeout(A.session.publish('com.lp.topic', ['hello'], { n: 1 }, { acknowledge: true }), 'PUBLISHED');
  await withTimeout(eventCame, 'EVENT over long-poll');
  check(JSON.stringify(events[0]) === '[["hello"],{"n":1}]', `event ${JSON.stringify(events[0])}`);
  // An event from the WebSocket session, too.
  const second = new Promise((r) => { gotEvent = r; });
  await withTimeout(W.session.publish('com.lp.topic', ['from ws'], {}, { acknowledge: true }), 'PUBLISHED ws');
  await withTimeout(second, 'EVENT from WebSocket');
  check(events[1][0][0] === 'from ws', `event ${JSON.stringify(events[1])}`);
  ok('pubsub');

  step('session_transport');
  const info = await withTimeout(W.session.call('wamp.session.get', [A.session.id]), 'wamp.session.get');
  check(info && info.transport && info.transport.type === 'longpoll',
    `wamp.session.get(A).transport ${JSON.stringify(info && info.transport)}, want type longpoll`);
  ok('session_transport');

  step('close');
  for (const X of [A, B, W]) {
    X.conn.close();
    const { reason } = await withTimeout(X.closed, `${X.name} closes`);
    check(reason === 'closed', `${X.name} closed with ${reason}, want closed`);
  }
  ok('close');
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stdout.write(`usage error: ${e.message}\n`);
    process.exit(2);
  }
  try {
    await scenario(args);
  } catch (e) {
    process.stdout.write(`FAIL ${current}: ${e && e.message ? e.message : e}\n`, () => process.exit(1));
    return;
  }
  process.stdout.write('PASS\n', () => process.exit(0));
}

main();
