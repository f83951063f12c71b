#!/usr/bin/env node
// A steady Autobahn|JS workload for tests that watch the router while clients work (the status
// page test in tests/interop.rs). Owned by the interop test harness.
//
//   node load.js WS_URL REALM SECONDS
//
// One session registers com.load.echo and subscribes to com.load.tick; another calls it in a
// closed loop and publishes a tick every tenth call, until SECONDS have passed. Prints
// "ready" once both sessions joined and the first call came back, then "done CALLS" and exits 0;
// exits 1 on any failure.

"use strict";

const path = require("path");
const autobahn = require(path.join(__dirname, "node_modules", "autobahn"));

const [url, realm, seconds] = process.argv.slice(2);
if (!url || !realm || !seconds) {
  console.error("usage: load.js WS_URL REALM SECONDS");
  process.exit(2);
}
const until = Date.now() + Number(seconds) * 1000;
setTimeout(() => { console.error("load.js: did not finish in time"); process.exit(1); }, Number(seconds) * 1000 + 20000).unref();

function join(name) {
  return new Promise((resolve, reject) => {
    const conn = new autobahn.Connection({
      url, realm, max_retries: 0, retry_if_unreachable: false, use_es6_promises: true,
    });
    conn.onopen = (session) => resolve({ conn, session });
    conn.onclose = (reason, details) => {
      reject(new Error(`${name} closed: ${reason} ${JSON.stringify(details)}`));
      return true;
    };
    conn.open();
  });
}

async function main() {
  const callee = await join("callee");
  await callee.session.register("com.load.echo", (args) => args[0]);
  await callee.session.subscribe("com.load.tick", () => {});
  const caller = await join("caller");
  let calls = 0;
  for (;;) {
    const answer = await caller.session.call("com.load.echo", [calls]);
    if (answer !== calls) throw new Error(`echo of ${calls} came back as ${answer}`);
    calls += 1;
    if (calls === 1) process.stdout.write("ready\n");
    if (calls % 10 === 0) caller.session.publish("com.load.tick", [calls]);
    if (Date.now() >= until) break;
  }
  process.stdout.write(`done ${calls}\n`);
  process.exit(0);
}

main().catch((e) => { console.error("load.js: " + (e && e.stack || e)); process.exit(1); });
