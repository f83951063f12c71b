# Auto-created realms: can a client make the router create realms without bound?
#
# Starts /tmp/wampring_hostile with the default config plus [router] auto_create_realms = true
# (realm1 still configured; listeners on 127.0.0.1:18080/18081; stderr to $HOSTILE_OUT/<tag>.stderr).
# Then --n times, sequentially: new RawSocket MsgPack connection, HELLO to realm "com.realm.<i>"
# (all distinct), read WELCOME or ABORT, then GOODBYE (waiting for the reply) and close. With
# --hold K the first K welcomed sessions are kept open (no GOODBYE) until the end, so their realms
# cannot be removed and the per-shard bound (max_auto_created_realms, default 1000) is reached.
# Reports welcomed vs aborted, the ABORT details/reason URIs, router VmRSS before / at the end of
# the HELLO loop / 3 s after everything closed, log lines written, and whether a HELLO to the
# configured realm1 is still welcomed at the end of the loop (held sessions still open).
# Run: /work/main/tests/interop/.venv/bin/python realms.py --cores 2 --n 20000
#      /work/main/tests/interop/.venv/bin/python realms.py --cores 1 --n 3000 --hold 1500
import argparse
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--hold", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=90.0)
    a = ap.parse_args()
    tag = f"realms_c{a.cores}_n{a.n}_hold{a.hold}"
    os.makedirs(common.OUT, exist_ok=True)
    cfg = common.write_config(os.path.join(common.OUT, f"{tag}.toml"), router={"auto_create_realms": True})
    r = common.Router(cfg, tag, ["--cores", str(a.cores)])
    held = []
    try:
        time.sleep(0.3)
        rss_before = r.rss_kib()
        lines0, bytes0 = r.log_stats()
        welcomed = aborted = failed = 0
        abort_kinds = collections.Counter()
        first_abort = None
        first_abort_index = None
        t0 = time.time()
        done = 0
        for i in range(a.n):
            if time.time() - t0 > a.time_limit:
                break
            done += 1
            try:
                c = common.Client(common.SER_MSGPACK, timeout=5)
                m = c.hello(f"com.realm.{i}")
            except Exception as e:  # noqa: BLE001
                failed += 1
                abort_kinds[f"exception {type(e).__name__}"] += 1
                continue
            if m[0] == 2:
                welcomed += 1
                if len(held) < a.hold:
                    held.append(c)
                    continue
                c.goodbye()
            elif m[0] == 3:
                aborted += 1
                abort_kinds[m[2]] += 1
                if first_abort is None:
                    first_abort, first_abort_index = m, i
            else:
                failed += 1
                abort_kinds[f"unexpected {m[0]}"] += 1
            c.close()
        loop_s = time.time() - t0
        rss_loop_end = r.rss_kib()
        # While the held sessions are still open: is the configured realm still reachable?
        try:
            c = common.Client(common.SER_MSGPACK, timeout=5)
            m = c.hello("realm1")
            realm1 = "WELCOME" if m[0] == 2 else str(m)
            if m[0] == 2:
                c.goodbye()
            c.close()
        except Exception as e:  # noqa: BLE001
            realm1 = f"exception {e!r}"
        for c in held:
            c.goodbye()
            c.close()
        time.sleep(3.0)
        rss_end = r.rss_kib()
        lines1, bytes1 = r.log_stats()
        with open(r.log_path, "rb") as f:
            during = f.read()[bytes0:bytes1].decode(errors="replace").splitlines()
        print(json.dumps({
            "router_cmd": " ".join(r.cmd),
            "hellos": done,
            "held_open": len(held),
            "loop_s": round(loop_s, 1),
            "welcomed": welcomed,
            "aborted": aborted,
            "failed": failed,
            "abort_reasons": dict(abort_kinds),
            "first_abort_at_hello_index": first_abort_index,
            "first_abort": first_abort,
            "realm1_hello_at_loop_end": realm1,
            "rss_kib_before": rss_before,
            "rss_kib_loop_end": rss_loop_end,
            "rss_kib_3s_after_all_closed": rss_end,
            "log_lines_during": lines1 - lines0,
            "log_bytes_during": bytes1 - bytes0,
            "sample_lines": [ln[:300] for ln in during[:4]],
        }, indent=1, default=str))
    finally:
        for c in held:
            c.close()
        r.stop()


if __name__ == "__main__":
    main()
