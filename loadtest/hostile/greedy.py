# Greedy subscriber: one session subscribes to N distinct topics; what is accepted, and what does
# it cost in router memory, and is that memory given back after the session leaves?
#
# Starts /tmp/wampring_hostile (default config, listeners on 127.0.0.1:18080/18081, stderr to
# $HOSTILE_OUT/<tag>.stderr; --max-subs sets [limits] max_subscriptions_per_session, absent =
# default 10,000). One RawSocket MsgPack session sends --n SUBSCRIBEs to "com.greedy.topic.<i>"
# in pipelined batches of --batch (sends a batch, then reads its replies). Reports SUBSCRIBED vs
# ERROR counts and the error URIs, router VmRSS (/proc/PID/status) before the session, with the
# subscriptions, and --after seconds after the session said GOODBYE and closed, plus log lines.
# --rounds R repeats the greedy session R times against the same router (does a later session
# reuse the memory the first one left behind, or does RSS keep growing?).
# Run: /work/main/tests/interop/.venv/bin/python greedy.py --cores 2 --n 300000
#      /work/main/tests/interop/.venv/bin/python greedy.py --cores 1 --n 300000 --max-subs 300000 --after 1,5,10,60
import argparse
import collections
import json
import os
import sys
import time

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--n", type=int, default=300000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--max-subs", type=int, default=None)
    ap.add_argument("--after", default="1,5")
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    tag = f"greedy_c{a.cores}_" + (f"max{a.max_subs}" if a.max_subs else "default") + f"_r{a.rounds}"
    os.makedirs(common.OUT, exist_ok=True)
    limits = {"max_subscriptions_per_session": a.max_subs} if a.max_subs else None
    cfg = common.write_config(os.path.join(common.OUT, f"{tag}.toml"), limits=limits)
    r = common.Router(cfg, tag, ["--cores", str(a.cores)])
    try:
        time.sleep(0.5)
        rss_before = r.rss_kib()
        lines0, _ = r.log_stats()
        rounds = []
        for rnd in range(a.rounds):
            c = common.Client(common.SER_MSGPACK, timeout=30)
            assert c.hello()[0] == 2
            kinds = collections.Counter()
            uris = collections.Counter()
            t0 = time.time()
            req = 0
            while req < a.n:
                k = min(a.batch, a.n - req)
                data = b"".join(
                    common.frame(msgpack.packb([32, req + i + 1, {}, f"com.greedy.topic.{req + i}"]))
                    for i in range(k))
                c.sock.sendall(data)
                for _ in range(k):
                    m = c.recv()
                    kinds[m[0]] += 1
                    if m[0] == 8:
                        uris[m[4]] += 1
                    elif m[0] not in (33,):
                        uris[f"unexpected {m[0]}: {str(m)[:120]}"] += 1
                req += k
            t_sub = time.time() - t0
            time.sleep(0.5)
            rss_with = r.rss_kib()
            c.goodbye()
            c.close()
            t_close = time.time()
            rss_after = {}
            for s in [float(x) for x in a.after.split(",")]:
                time.sleep(max(0, t_close + s - time.time()))
                rss_after[f"{s:g}s"] = r.rss_kib()
            rounds.append({"subscribed": kinds.get(33, 0), "errors": kinds.get(8, 0),
                           "error_uris": dict(uris), "subscribe_phase_s": round(t_sub, 2),
                           "rss_kib_with_subs": rss_with, "rss_kib_after_disconnect": rss_after})
        lines1, bytes1 = r.log_stats()
        with open(r.log_path, "rb") as f:
            during = f.read().decode(errors="replace").splitlines()[lines0:lines1]
        print(json.dumps({
            "router_cmd": " ".join(r.cmd),
            "config_limits": limits,
            "subscribes_sent": a.n,
            "rss_kib_before": rss_before,
            "rounds": rounds,
            "log_lines_during": lines1 - lines0,
            "sample_lines": [ln[:250] for ln in during[:3]],
        }, indent=1))
    finally:
        r.stop()


if __name__ == "__main__":
    main()
