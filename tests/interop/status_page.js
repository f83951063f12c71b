#!/usr/bin/env node
// Drives headless Chromium through the status page of a running wampring admin listener, for
// tests/status_page.rs. Owned by the interop test harness (it uses ws from node_modules).
//
//   node status_page.js CHROMIUM URL SCREENSHOT.png
//
// Launches CHROMIUM headless with a DevTools port, opens URL, waits until the page has polled
// /status.json at least twice, reads what it shows (two readings three seconds apart), saves a
// screenshot, closes the browser and prints {"first": {...}, "second": {...}} on stdout. Every
// wait is bounded; any failure exits 1 with the reason on stderr.

"use strict";

const { spawn } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const WebSocket = require(path.join(__dirname, "node_modules", "ws"));

const [chromium, url, screenshot] = process.argv.slice(2);
if (!chromium || !url || !screenshot) {
  console.error("usage: status_page.js CHROMIUM URL SCREENSHOT.png");
  process.exit(2);
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "wampring-chromium-"));
const browser = spawn(chromium, [
  "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
  "--no-first-run", "--no-default-browser-check", "--disable-extensions",
  "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
  `--user-data-dir=${profile}`, "--window-size=1280,1000", "about:blank",
], { stdio: ["ignore", "ignore", "pipe"] });

let finished = false;
function finish(code, message) {
  if (finished) return;
  finished = true;
  if (message) console.error(message);
  try { browser.kill("SIGKILL"); } catch (_) { /* already gone */ }
  setTimeout(() => {
    fs.rmSync(profile, { recursive: true, force: true });
    process.exit(code);
  }, 200);
}
setTimeout(() => finish(1, "status_page.js: gave up after 60 s"), 60000).unref();
browser.on("exit", (code) => finish(1, `chromium exited early (${code})`));

let stderr = "";
browser.stderr.on("data", (chunk) => {
  stderr += chunk;
  const found = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
  if (found && !drive.started) {
    drive.started = true;
    drive(found[1]).then(
      (result) => { process.stdout.write(JSON.stringify(result) + "\n"); finish(0); },
      (e) => finish(1, "status_page.js: " + (e && e.stack || e) + "\nchromium said:\n" + stderr.slice(-2000)),
    );
  }
});

async function drive(browserUrl) {
  const socket = new WebSocket(browserUrl, { perMessageDeflate: false });
  await new Promise((resolve, reject) => { socket.once("open", resolve); socket.once("error", reject); });
  let next = 1;
  const waiting = new Map();
  socket.on("message", (data) => {
    const message = JSON.parse(data);
    if (message.id && waiting.has(message.id)) {
      const { resolve, reject } = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.error) reject(new Error(JSON.stringify(message.error))); else resolve(message.result);
    }
  });
  const send = (method, params = {}, sessionId) => new Promise((resolve, reject) => {
    const id = next++;
    waiting.set(id, { resolve, reject });
    socket.send(JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params }));
  });
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  const { targetId } = await send("Target.createTarget", { url: "about:blank" });
  const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
  await send("Page.enable", {}, sessionId);
  await send("Runtime.enable", {}, sessionId);
  await send("Page.navigate", { url }, sessionId);

  const read = async () => {
    const { result } = await send("Runtime.evaluate", {
      returnByValue: true,
      expression: `(() => {
        const text = (id) => { const e = document.getElementById(id); return e ? e.textContent.trim() : null; };
        return {
          title: document.title,
          state: text("state"),
          version: text("version"),
          shards: text("shard-count"),
          sessions: text("sessions-total"),
          rate_in: text("rate-in-total"),
          rate_out: text("rate-out-total"),
          calls_rate: text("calls-rate-total"),
          messages_total: text("messages-total"),
          latency_p50: text("latency-p50"),
          latency_p99: text("latency-p99"),
          registrations: text("registrations"),
          polls: Number(text("polls") || 0),
          error: text("error"),
          rows: document.querySelectorAll("#shards tbody tr").length,
          canvases: Array.from(document.querySelectorAll("canvas")).map((c) => c.width > 0 && c.height > 0),
        };
      })()`,
    }, sessionId);
    return result.value;
  };

  const waitForPolls = async (count, limitMs) => {
    const until = Date.now() + limitMs;
    for (;;) {
      const seen = await read().catch(() => null);
      if (seen && seen.polls >= count) return seen;
      if (Date.now() > until) throw new Error("the page did not poll " + count + " times: " + JSON.stringify(seen));
      await sleep(200);
    }
  };

  const first = await waitForPolls(3, 20000);
  await sleep(3000);
  const second = await waitForPolls(first.polls + 2, 10000);
  const { data } = await send("Page.captureScreenshot", { format: "png" }, sessionId);
  fs.writeFileSync(screenshot, Buffer.from(data, "base64"));
  socket.close();
  return { first, second };
}
