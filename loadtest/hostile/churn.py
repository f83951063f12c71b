# Connect churn: how many log lines does a client that opens and closes sessions in a loop cause?
#
# Starts /tmp/wampring_hostile (default config, listeners on 127.0.0.1:18080/18081, stderr
# captured to $HOSTILE_OUT/<tag>.stderr; default level info unless --log-level is given), then
# --workers processes each loop for --secs seconds: new RawSocket MsgPack connection, HELLO
# realm1, wait for WELCOME, GOODBYE, wait for the GOODBYE reply, close. Reports sessions welcomed
# (and any failures), sessions/s, router log lines/bytes written during the churn (measured 1 s
# after it ends) and the first distinct log lines.
# Run: /work/main/tests/interop/.venv/bin/python churn.py --cores 2 --workers 3 --secs 4
#      (add --log-level debug to see what the per-session lines would cost at debug)
import argparse
import json
import multiprocessing as mp
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def worker(start, secs, q):
    start.wait()
    end = time.time() + secs
    ok = fail = 0
    while time.time() < end:
        try:
            c = common.Client(common.SER_MSGPACK, timeout=3)
            w = c.hello()
            if w[0] == 2:
                ok += 1
                c.goodbye()
            else:
                fail += 1
            c.close()
        except Exception:
            fail += 1
    q.put((ok, fail))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--secs", type=float, default=4.0)
    ap.add_argument("--log-level", default=None)
    a = ap.parse_args()
    tag = f"churn_c{a.cores}" + (f"_{a.log_level}" if a.log_level else "")
    os.makedirs(common.OUT, exist_ok=True)
    cfg = common.write_config(os.path.join(common.OUT, f"{tag}.toml"))
    extra = ["--cores", str(a.cores)] + (["--log-level", a.log_level] if a.log_level else [])
    r = common.Router(cfg, tag, extra)
    procs = []
    try:
        start, q = mp.Event(), mp.Queue()
        procs = [mp.Process(target=worker, args=(start, a.secs, q)) for _ in range(a.workers)]
        for p in procs:
            p.start()
        time.sleep(0.3)
        lines0, bytes0 = r.log_stats()
        start.set()
        res = [q.get(timeout=a.secs + 30) for _ in procs]
        for p in procs:
            p.join(5)
        time.sleep(1.0)
        lines1, bytes1 = r.log_stats()
        with open(r.log_path, "rb") as f:
            during = f.read()[bytes0:bytes1].decode(errors="replace").splitlines()
        ok = sum(x[0] for x in res)
        fail = sum(x[1] for x in res)
        print(json.dumps({
            "router_cmd": " ".join(r.cmd),
            "workers": a.workers,
            "secs": a.secs,
            "sessions_welcomed": ok,
            "failures": fail,
            "sessions_per_s": round(ok / a.secs),
            "log_lines_during": lines1 - lines0,
            "log_bytes_during": bytes1 - bytes0,
            "sample_lines": [ln[:250] for ln in during[:3]],
        }, indent=1))
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
        r.stop()


if __name__ == "__main__":
    main()
