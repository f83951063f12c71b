#!/usr/bin/env node
// WAMP interop scenario runner using Autobahn|JS (Node).
//
// Owned by the interop test harness (tests/interop/**, tests/interop.rs).
// Mirrors tests/interop/client.py step by step: two real Autobahn|JS sessions
// (callee/subscriber "A", caller/publisher "B") exercise RPC with
// args/kwargs, application errors, the router's own wamp.session.count meta
// procedure, the router's wamp.session.on_join / on_leave meta events (for a
// third session C), pub/sub with and without acknowledge,
// publisher exclusion, unsubscribe, unregister and a clean GOODBYE. Each
// passed step prints `ok <step>`; the first failure prints
// `FAIL <step>: <reason>` and exits non-zero. A hard timeout guarantees exit.
//
// Usage:
//   node client.js --url ws://127.0.0.1:8080/ws --serializer json|msgpack --realm realm1
//   node client.js --url rs://127.0.0.1:8081 --serializer json
// Autobahn|JS 22.x speaks RawSocket only in Node and only with JSON
// (lib/transport/rawsocket.js hard-codes JSON.stringify/JSON.parse).

'use strict';

const util = require('util');
const autobahn = require('autobahn');

const HARD_TIMEOUT_MS = 20000;
const STEP_TIMEOUT_MS = 5000;
const QUIET_WAIT_MS = 500;

const PROC_ADD = 'com.interop.add';
const PROC_ECHO = 'com.interop.echo';
const PROC_FAIL = 'com.interop.fail';
const TOPIC = 'com.interop.topic';
const CUSTOM_ERROR = 'com.interop.error.custom';

// Same values as client.py (2**40: > 32 bit but still a safe JS integer).
const ECHO_ARGS = [1, 'two', 3.5, -7, null, true, false, 'ünïcødé ✓', [1, [2, { x: 'y' }]], 2 ** 40];
const ECHO_KWARGS = { a: 1, b: 'c', nested: { list: [1, 2, 3], f: 0.25 }, empty: {} };

let currentStep = 'start';

function fail(msg) {
  process.stdout.write(`FAIL ${currentStep}: ${msg}\n`, () => process.exit(1));
  // in case the write callback never fires
  setTimeout(() => process.exit(1), 500).unref();
}

// Last resort: whatever happens, exit within the hard timeout.
setTimeout(() => fail(`hard timeout (${HARD_TIMEOUT_MS} ms)`), HARD_TIMEOUT_MS).unref();
process.on('unhandledRejection', (e) => fail(`unhandled rejection: ${fmt(e)}`));
process.on('uncaughtException', (e) => fail(`uncaught exception: ${fmt(e)}`));

function step(name) { currentStep = name; }
function ok(name) { process.stdout.write(`ok ${name}\n`); }
function fmt(v) { return util.inspect(v, { depth: 6, breakLength: Infinity }); }

class StepFailed extends Error {}
function check(cond, msg) { if (!cond) throw new StepFailed(msg); }
function same(a, b) { return util.isDeepStrictEqual(a, b); }

function withTimeout(promise, what) {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new StepFailed(`timeout (${STEP_TIMEOUT_MS} ms) waiting for ${what}`)), STEP_TIMEOUT_MS);
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(t));
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function parseArgs(argv) {
  const out = { url: null, serializer: 'json', realm: 'realm1', subscriptionLimit: 0 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === '--url') { out.url = v; i++; }
    else if (k === '--serializer') { out.serializer = v; i++; }
    else if (k === '--realm') { out.realm = v; i++; }
    else if (k === '--subscription-limit') { out.subscriptionLimit = Number(v); i++; }
    else { throw new Error(`unknown argument ${k}`); }
  }
  if (!out.url) throw new Error('--url is required');
  if (!['json', 'msgpack'].includes(out.serializer)) throw new Error(`unknown serializer ${out.serializer}`);
  return out;
}

function transportFor(args) {
  const u = new URL(args.url);
  if (u.protocol === 'ws:') {
    const ser = args.serializer === 'json'
      ? new autobahn.serializer.JSONSerializer()
      : new autobahn.serializer.MsgpackSerializer();
    return { type: 'websocket', url: args.url, serializers: [ser] };
  }
  if (u.protocol === 'rs:' || u.protocol === 'tcp:') {
    if (args.serializer !== 'json') {
      throw new Error('Autobahn|JS RawSocket supports only the json serializer');
    }
    return { type: 'rawsocket', host: u.hostname, port: Number(u.port) };
  }
  throw new Error(`unsupported url scheme in ${args.url}`);
}

// Opens one connection; resolves to {conn, session, details, closed} once joined.
// `closed` resolves with {reason, details} when the connection is gone.
function connect(args, name) {
  return new Promise((resolve, reject) => {
    let resolveClosed;
    const closed = new Promise((r) => { resolveClosed = r; });
    let joined = false;
    const conn = new autobahn.Connection({
      realm: args.realm,
      transports: [transportFor(args)],
      max_retries: 0,
      retry_if_unreachable: false,
      use_es6_promises: true,
    });
    conn.onopen = (session, details) => {
      joined = true;
      resolve({ name, conn, session, details, closed });
    };
    conn.onclose = (reason, details) => {
      resolveClosed({ reason, details });
      if (!joined) {
        reject(new StepFailed(`session ${name} closed before WELCOME: ${reason} ${fmt(details)}`));
      }
      return true; // never retry
    };
    conn.open();
  });
}

async function expectAppError(promise, uri, what) {
  let res;
  try {
    res = await withTimeout(promise, what);
  } catch (e) {
    if (e instanceof StepFailed) throw e;
    check(e instanceof autobahn.Error, `expected autobahn.Error ${uri}, got ${fmt(e)}`);
    check(e.error === uri, `expected error ${uri}, got ${e.error} args=${fmt(e.args)} kwargs=${fmt(e.kwargs)}`);
    return e;
  }
  throw new StepFailed(`expected error ${uri}, got result ${fmt(res)}`);
}

// A queue of events fed by a subscription handler.
class EventQueue {
  constructor() { this.items = []; this.waiters = []; }
  push(ev) {
    const w = this.waiters.shift();
    if (w) w(ev); else this.items.push(ev);
  }
  next(what) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return withTimeout(new Promise((r) => this.waiters.push(r)), what);
  }
  async expectNothing(what) {
    await sleep(QUIET_WAIT_MS);
    check(this.items.length === 0, `${what}: unexpected event ${fmt(this.items[0])}`);
  }
}

async function scenario(args) {
  step('join');
  const A = await withTimeout(connect(args, 'A'), 'session A join');
  const B = await withTimeout(connect(args, 'B'), 'session B join');
  const a = A.session;
  const b = B.session;
  check(Number.isInteger(a.id) && Number.isInteger(b.id), `session ids are not integers: ${a.id} ${b.id}`);
  check(a.id !== b.id, `both sessions got the same id ${a.id}`);
  check(a.realm === args.realm, `joined realm ${a.realm} != ${args.realm}`);
  process.stdout.write(`info transport=${fmt(A.details.transport)}\n`);
  ok('join');

  // ---------------------------------------------------------------- RPC
  step('register');
  const add = (cargs) => cargs[0] + cargs[1];
  const echo = (cargs, ckwargs) => new autobahn.Result(cargs, ckwargs);
  const failer = () => { throw new autobahn.Error(CUSTOM_ERROR, [1, 'two'], { foo: 'bar' }); };
  const regAdd = await withTimeout(a.register(PROC_ADD, add), 'REGISTERED add');
  const regEcho = await withTimeout(a.register(PROC_ECHO, echo), 'REGISTERED echo');
  const regFail = await withTimeout(a.register(PROC_FAIL, failer), 'REGISTERED fail');
  for (const r of [regAdd, regEcho, regFail]) {
    check(Number.isInteger(r.id) && r.id > 0, `bad registration id ${r.id}`);
  }
  ok('register');

  step('register_duplicate');
  await expectAppError(b.register(PROC_ADD, add), 'wamp.error.procedure_already_exists', 'ERROR for duplicate REGISTER');
  ok('register_duplicate');

  step('call_add');
  let res = await withTimeout(b.call(PROC_ADD, [2, 3]), 'RESULT add');
  check(res === 5, `add(2,3) returned ${fmt(res)}`);
  ok('call_add');

  step('call_echo');
  res = await withTimeout(b.call(PROC_ECHO, ECHO_ARGS, ECHO_KWARGS), 'RESULT echo');
  check(res instanceof autobahn.Result, `echo returned ${fmt(res)}, want autobahn.Result`);
  check(same(res.args, ECHO_ARGS), `echo args ${fmt(res.args)} != ${fmt(ECHO_ARGS)}`);
  check(same(res.kwargs, ECHO_KWARGS), `echo kwargs ${fmt(res.kwargs)} != ${fmt(ECHO_KWARGS)}`);
  ok('call_echo');

  step('call_echo_kwargs_only');
  res = await withTimeout(b.call(PROC_ECHO, [], { only: 'kw' }), 'RESULT echo kwargs');
  check(res instanceof autobahn.Result && same(res.args, []) && same(res.kwargs, { only: 'kw' }),
    `echo returned ${fmt(res)}`);
  ok('call_echo_kwargs_only');

  step('call_echo_large');
  const big = 'x'.repeat(200000) + 'ü'; // > 64 KiB: 64-bit WebSocket length, big RawSocket frame
  res = await withTimeout(b.call(PROC_ECHO, [big]), 'RESULT echo large');
  check(res === big, `large echo returned ${typeof res === 'string' ? res.length + ' chars' : fmt(res)}`);
  ok('call_echo_large');

  step('call_concurrent');
  const calls = [];
  for (let i = 0; i < 50; i++) calls.push(b.call(PROC_ADD, [i, i]));
  const results = await withTimeout(Promise.all(calls), '50 concurrent RESULTs');
  check(same(results, calls.map((_, i) => 2 * i)), `concurrent add results ${fmt(results)}`);
  ok('call_concurrent');

  step('call_error');
  const e = await expectAppError(b.call(PROC_FAIL), CUSTOM_ERROR, 'ERROR for fail');
  check(same(e.args, [1, 'two']), `error args ${fmt(e.args)} != [1, 'two']`);
  check(same(e.kwargs, { foo: 'bar' }), `error kwargs ${fmt(e.kwargs)} != { foo: 'bar' }`);
  ok('call_error');

  step('call_no_such_procedure');
  await expectAppError(b.call('com.interop.does_not_exist'), 'wamp.error.no_such_procedure', 'ERROR for unknown CALL');
  ok('call_no_such_procedure');

  step('publish_reserved_topic');
  // wamp.* topics are the router's (its meta events): an acknowledged PUBLISH there is refused
  // with the error Crossbar.io gives; the session stays usable.
  await expectAppError(a.publish('wamp.session.on_join', [{ session: 1 }], {}, { acknowledge: true }),
    'wamp.error.invalid_uri', 'ERROR for PUBLISH to a wamp. topic');
  await expectAppError(b.call('com.interop.does_not_exist'), 'wamp.error.no_such_procedure', 'ERROR for unknown CALL after the refusal');
  ok('publish_reserved_topic');

  if (args.subscriptionLimit > 0) {
    step('subscription_limit');
    // The router was started with limits.max_subscriptions_per_session = N (tests/interop.rs
    // passes N): B holds no subscription yet, so N SUBSCRIBEs succeed, the next gets
    // wampring.error.too_many_subscriptions, and after an UNSUBSCRIBE there is room again.
    const ignore = () => {};
    const limitSubs = [];
    for (let i = 0; i < args.subscriptionLimit; i++) {
      limitSubs.push(await withTimeout(b.subscribe(`com.interop.limit.${i}`, ignore), `SUBSCRIBED limit ${i}`));
    }
    await expectAppError(b.subscribe('com.interop.limit.over', ignore),
      'wampring.error.too_many_subscriptions', 'ERROR for one SUBSCRIBE too many');
    await withTimeout(b.unsubscribe(limitSubs[0]), 'UNSUBSCRIBED limit 0');
    limitSubs[0] = await withTimeout(b.subscribe('com.interop.limit.again', ignore), 'SUBSCRIBED after UNSUBSCRIBE');
    for (const sub of limitSubs) {
      await withTimeout(b.unsubscribe(sub), 'UNSUBSCRIBED limit');
    }
    ok('subscription_limit');
  }

  step('session_count');
  // The router answers wamp.session.count itself (the same from any shard). This router was
  // started for this run alone, so exactly our two sessions (A and B, both anonymous) are in
  // the realm; ask from both, which with two shards sit on different shards.
  const joined = 2;
  for (const X of [A, B]) {
    res = await withTimeout(X.session.call('wamp.session.count'), `RESULT wamp.session.count (${X.name})`);
    check(Number.isInteger(res) && res >= joined,
      `wamp.session.count from ${X.name} returned ${fmt(res)}, want an integer >= ${joined}`);
    check(res === joined, `wamp.session.count from ${X.name} returned ${res}, want ${joined}`);
    res = await withTimeout(X.session.call('wamp.session.count', [['anonymous']]),
      `RESULT wamp.session.count(['anonymous']) (${X.name})`);
    check(res === joined, `wamp.session.count(['anonymous']) from ${X.name} returned ${fmt(res)}, want ${joined}`);
    res = await withTimeout(X.session.call('wamp.session.count', [['admin']]),
      `RESULT wamp.session.count(['admin']) (${X.name})`);
    check(res === 0, `wamp.session.count(['admin']) from ${X.name} returned ${fmt(res)}, want 0`);
  }
  await expectAppError(b.call('wamp.session.frobnicate'), 'wamp.error.no_such_procedure', 'ERROR for wamp.session.frobnicate');
  await expectAppError(b.call('wamp.session.count', ['x']), 'wamp.error.invalid_argument', "ERROR for wamp.session.count('x')");
  ok('session_count');

  step('session_meta_events');
  // The router publishes wamp.session.on_join / on_leave itself (digest §10), from the shard
  // of the session they are about to subscribers on every shard. A and B subscribe (with two
  // shards and round-robin placement they sit on different shards, so one of them always gets
  // the events across the shard channels); then a third session C joins and leaves with
  // GOODBYE. Placed after session_count, which asserts that exactly A and B are joined.
  // Meta events about other sessions are ignored (filtered by session id).
  const META_JOIN = 'wamp.session.on_join';
  const META_LEAVE = 'wamp.session.on_leave';
  const metaQ = new Map();
  const metaSubs = [];
  for (const X of [A, B]) {
    const q = new EventQueue();
    metaQ.set(X.name, q);
    for (const topic of [META_JOIN, META_LEAVE]) {
      metaSubs.push([X, await withTimeout(
        X.session.subscribe(topic, (eargs, ekwargs, details) => q.push({ topic, eargs, ekwargs, details })),
        `SUBSCRIBED ${topic} (${X.name})`)]);
    }
  }
  const C = await withTimeout(connect(args, 'C'), 'session C join');
  const newId = C.session.id;
  check(Number.isInteger(newId) && newId !== a.id && newId !== b.id,
    `session C got id ${fmt(newId)} (A=${a.id}, B=${b.id})`);
  C.conn.close();
  const cc = await withTimeout(C.closed, 'connection C close after GOODBYE');
  check(cc.reason === 'closed', `connection C closed with ${cc.reason} (want clean 'closed'): ${fmt(cc.details)}`);
  check(['wamp.close.goodbye_and_out', 'wamp.close.normal'].includes(cc.details.reason),
    `session C left with reason ${fmt(cc.details.reason)}`);

  // The next meta event in `q` about session C.
  const nextMeta = async (q, who) => {
    for (;;) {
      const m = await q.next(`meta EVENT about session C (${who})`);
      const eargs = m.eargs || [];
      if (m.topic === META_JOIN) {
        if (eargs[0] && typeof eargs[0] === 'object' && eargs[0].session === newId) return m;
      } else if (eargs[0] === newId) {
        return m;
      }
    }
  };
  const wantTransport = new URL(args.url).protocol === 'ws:' ? 'websocket' : 'rawsocket';
  const emptyKw = (kw) => kw === undefined || kw === null || same(kw, {});
  for (const X of [A, B]) {
    let m = await nextMeta(metaQ.get(X.name), X.name);
    check(m.topic === META_JOIN,
      `${X.name}: first meta event about session C is ${m.topic} ${fmt(m.eargs)}, want ${META_JOIN}`);
    check(m.eargs.length === 1 && emptyKw(m.ekwargs),
      `${X.name}: on_join args=${fmt(m.eargs)} kwargs=${fmt(m.ekwargs)}, want one positional dict`);
    const info = m.eargs[0];
    check(info.authrole === 'anonymous' && info.authmethod === 'anonymous',
      `${X.name}: on_join authrole/authmethod in ${fmt(info)}, want anonymous/anonymous`);
    check(info.authid === String(newId), `${X.name}: on_join authid ${fmt(info.authid)} != '${newId}'`);
    check(info.authprovider === 'static', `${X.name}: on_join authprovider ${fmt(info.authprovider)}`);
    const tr = info.transport;
    check(tr && typeof tr === 'object' && !Array.isArray(tr), `${X.name}: on_join transport ${fmt(tr)} is not a dict`);
    check(tr.type === wantTransport && tr.serializer === args.serializer,
      `${X.name}: on_join transport ${fmt(tr)}, want type=${wantTransport} serializer=${args.serializer}`);
    check(typeof tr.peer === 'string' && tr.peer.startsWith('127.0.0.1:'),
      `${X.name}: on_join transport peer ${fmt(tr.peer)}, want 127.0.0.1:PORT`);
    m = await nextMeta(metaQ.get(X.name), X.name);
    check(m.topic === META_LEAVE,
      `${X.name}: second meta event about session C is ${m.topic} ${fmt(m.eargs)}, want ${META_LEAVE}`);
    check(same(m.eargs, [newId, String(newId), 'anonymous']) && emptyKw(m.ekwargs),
      `${X.name}: on_leave args=${fmt(m.eargs)} kwargs=${fmt(m.ekwargs)}, want [${newId}, '${newId}', 'anonymous']`);
  }
  for (const [X, sub] of metaSubs) {
    await withTimeout(X.session.unsubscribe(sub), `UNSUBSCRIBED meta topic (${X.name})`);
    check(!sub.active, 'meta subscription still active after unsubscribe');
  }
  ok('session_meta_events');

  // ------------------------------------------------------------- PubSub
  step('subscribe');
  const qa = new EventQueue();
  const qb = new EventQueue();
  const subA = await withTimeout(a.subscribe(TOPIC, (eargs, ekwargs, details) => qa.push({ eargs, ekwargs, details })), 'SUBSCRIBED A');
  const subB = await withTimeout(b.subscribe(TOPIC, (eargs, ekwargs, details) => qb.push({ eargs, ekwargs, details })), 'SUBSCRIBED B');
  check(Number.isInteger(subA.id) && subA.id > 0, `bad subscription id ${subA.id}`);
  ok('subscribe');

  step('publish_noack');
  const p0 = b.publish(TOPIC, [1, 'x'], { k: 'v' });
  check(p0 === undefined || p0 === null, `publish without acknowledge returned ${fmt(p0)}`);
  let ev = await qa.next('EVENT (no ack)');
  check(same(ev.eargs, [1, 'x']) && same(ev.ekwargs, { k: 'v' }), `event args=${fmt(ev.eargs)} kwargs=${fmt(ev.ekwargs)}`);
  ok('publish_noack');

  step('publish_ack');
  const pub = await withTimeout(b.publish(TOPIC, ECHO_ARGS, ECHO_KWARGS, { acknowledge: true }), 'PUBLISHED');
  check(pub && Number.isInteger(pub.id) && pub.id > 0, `bad publication ${fmt(pub)}`);
  ev = await qa.next('EVENT (ack)');
  check(same(ev.eargs, ECHO_ARGS), `event args ${fmt(ev.eargs)} != ${fmt(ECHO_ARGS)}`);
  check(same(ev.ekwargs, ECHO_KWARGS), `event kwargs ${fmt(ev.ekwargs)} != ${fmt(ECHO_KWARGS)}`);
  check(ev.details && ev.details.publication === pub.id,
    `event publication id ${ev.details && ev.details.publication} != PUBLISHED id ${pub.id}`);
  ok('publish_ack');

  step('publisher_exclusion');
  await qb.expectNothing('publisher received its own event');
  ok('publisher_exclusion');

  step('unsubscribe');
  await withTimeout(a.unsubscribe(subA), 'UNSUBSCRIBED');
  check(!subA.active, 'subscription still active after unsubscribe');
  const pub2 = await withTimeout(b.publish(TOPIC, ['after-unsubscribe'], {}, { acknowledge: true }), 'PUBLISHED after unsubscribe');
  check(pub2 && pub2.id > 0, `bad publication ${fmt(pub2)}`);
  await qa.expectNothing('event after unsubscribe');
  ok('unsubscribe');

  step('unregister');
  await withTimeout(a.unregister(regAdd), 'UNREGISTERED');
  check(!regAdd.active, 'registration still active after unregister');
  await expectAppError(b.call(PROC_ADD, [1, 2]), 'wamp.error.no_such_procedure', 'ERROR for CALL after unregister');
  res = await withTimeout(b.call(PROC_ECHO, ['still-there']), 'RESULT echo after unregister');
  check(res === 'still-there', `echo after unregister of add returned ${fmt(res)}`);
  ok('unregister');

  // ------------------------------------------------------------ GOODBYE
  step('goodbye');
  await withTimeout(b.unsubscribe(subB), 'UNSUBSCRIBED B');
  A.conn.close();
  B.conn.close();
  for (const X of [A, B]) {
    const c = await withTimeout(X.closed, `connection ${X.name} close after GOODBYE`);
    check(c.reason === 'closed', `connection ${X.name} closed with ${c.reason} (want clean 'closed'): ${fmt(c.details)}`);
    check(['wamp.close.goodbye_and_out', 'wamp.close.normal'].includes(c.details.reason),
      `session ${X.name} left with reason ${fmt(c.details.reason)}`);
  }
  ok('goodbye');
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stdout.write(`usage error: ${e.message}\n`);
    process.exit(2);
  }
  process.stdout.write(`info autobahn-js url=${args.url} serializer=${args.serializer} realm=${args.realm}\n`);
  try {
    await scenario(args);
  } catch (e) {
    fail(e instanceof StepFailed ? e.message : fmt(e));
    return;
  }
  process.stdout.write('PASS\n', () => process.exit(0));
}

main();
