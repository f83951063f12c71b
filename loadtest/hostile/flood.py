# Log flood: does a hostile publisher make the router write one log line per bad message?
#
# Starts /tmp/wampring_hostile (default config, listeners on 127.0.0.1:18080/18081, default
# log level info, stderr captured to $HOSTILE_OUT/<tag>.stderr), connects a RawSocket JSON
# subscriber to "com.flood" (separate process, reads and discards everything), then a RawSocket
# MsgPack publisher sends unacknowledged PUBLISHes as fast as it can for --secs seconds
# (pre-encoded batches of 1000, non-blocking writes, its socket drained all the time). Reports
# messages handed to the socket, events the subscriber got, router log lines/bytes written
# from connect to 1 s after the flood, and the first distinct log lines.
#   --payload nan      PUBLISH [16, id, {}, TOPIC, [NaN]] (a JSON subscriber cannot get it)
#   --topic TOPIC      "com.flood" (default), "com..flood" (invalid), "wamp.session.on_join"
#   --cores N          passed to the router as --cores N
# Run: /work/main/tests/interop/.venv/bin/python flood.py --cores 2 --topic com.flood
import argparse
import json
import multiprocessing as mp
import os
import select
import socket
import sys
import time

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def subscriber(ready, stop, q):
    c = common.Client(common.SER_JSON)
    c.hello()
    c.send([32, 1, {}, "com.flood"])
    r = c.recv()
    ready.set()
    c.sock.settimeout(0.2)
    got = 0
    events = 0
    while not stop.is_set():
        try:
            d = c.sock.recv(1 << 20)
        except socket.timeout:
            continue
        except OSError:
            break
        if not d:
            break
        got += len(d)
        c.buf += d
        events += sum(1 for p in c.frames() if p.startswith(b"[36"))
    c.close()
    q.put({"subscribed": r[0] == 33, "bytes": got, "events": events})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--topic", default="com.flood")
    ap.add_argument("--secs", type=float, default=5.0)
    ap.add_argument("--tag", default=None)
    a = ap.parse_args()
    tag = a.tag or f"flood_{a.topic.replace('.', '_')}_c{a.cores}"
    os.makedirs(common.OUT, exist_ok=True)
    cfg = common.write_config(os.path.join(common.OUT, f"{tag}.toml"))
    r = common.Router(cfg, tag, ["--cores", str(a.cores)])
    sub = None
    try:
        ready, stop, q = mp.Event(), mp.Event(), mp.Queue()
        sub = mp.Process(target=subscriber, args=(ready, stop, q))
        sub.start()
        if not ready.wait(10):
            raise SystemExit("subscriber not ready")
        pub = common.Client(common.SER_MSGPACK)
        w = pub.hello()
        assert w[0] == 2, w
        lines0, bytes0 = r.log_stats()
        one = common.frame(msgpack.packb([16, 1, {}, a.topic, [float("nan")]]))
        batch = one * 1000
        pub.sock.setblocking(False)
        sent_bytes = 0
        recv_bytes = 0
        mv = memoryview(batch)
        off = 0
        t0 = time.time()
        end = t0 + a.secs
        while True:
            now = time.time()
            if now >= end:
                break
            rl, wl, _ = select.select([pub.sock], [pub.sock], [], min(0.05, end - now))
            if rl:
                try:
                    d = pub.sock.recv(1 << 20)
                    recv_bytes += len(d)
                    pub.buf += d
                    pub.frames()  # answers pings
                except BlockingIOError:
                    pass
            if wl:
                try:
                    n = pub.sock.send(mv[off:])
                except BlockingIOError:
                    n = 0
                sent_bytes += n
                off += n
                if off == len(batch):
                    off = 0
        msgs = sent_bytes // len(one)
        time.sleep(1.0)
        lines1, bytes1 = r.log_stats()
        pub.sock.setblocking(True)
        pub.sock.settimeout(3)
        pub.goodbye()
        pub.close()
        stop.set()
        res = q.get(timeout=10)
        sub.join(5)
        alive = r.proc.poll() is None
        time.sleep(0.5)
        lines2, bytes2 = r.log_stats()
        with open(r.log_path, "rb") as f:
            tail = f.read()[bytes0:bytes1].decode(errors="replace").splitlines()
        distinct = []
        for ln in tail:
            key = ln.split("wampring", 1)[-1][:200]
            if key not in [d[0] for d in distinct]:
                distinct.append((key, ln))
            if len(distinct) >= 3:
                break
        out = {
            "tag": tag,
            "router_cmd": " ".join(r.cmd),
            "topic": a.topic,
            "cores": a.cores,
            "secs": a.secs,
            "msgs_sent": msgs,
            "msgs_per_s": round(msgs / a.secs),
            "pub_bytes_received": recv_bytes,
            "subscriber": res,
            "log_lines_during": lines1 - lines0,
            "log_bytes_during": bytes1 - bytes0,
            "log_lines_connect_to_close": lines2 - lines0,
            "router_alive": alive,
            "sample_lines": [d[1][:300] for d in distinct],
        }
        print(json.dumps(out, indent=1))
    finally:
        if sub is not None and sub.is_alive():
            sub.terminate()
            sub.join()
        r.stop()
        try:
            with open(r.log_path) as f:
                last = [ln for ln in f if "stopped:" in ln]
            if last:
                print("router final:", last[-1].split("stopped:", 1)[1][:160].strip())
        except OSError:
            pass


if __name__ == "__main__":
    main()
