#!/usr/bin/env python3
# Mixed-serializer scenario: sessions with JSON, MessagePack and CBOR on one router.
#
# Owned by the interop test harness (tests/interop/**, tests/interop.rs). Autobahn|Python
# (asyncio) sessions, one "callee" (registers com.mixed.echo.<ser> and com.mixed.fail.<ser>,
# subscribes to com.mixed.topic) and one "caller" (calls and publishes) per serializer, so six
# sessions: every call, error and event crosses every serializer pair (json, msgpack, cbor,
# both directions, and each with itself), which makes the router transcode. The payloads are
# edge_values.py's (binary, unicode, 64-bit ints, floats, empty and nested values, kwargs), and
# every hop is checked strictly: the callee checks the INVOCATION it got (and answers an error
# naming the first difference), the caller the RESULT, each subscriber the EVENT. The fail
# procedures raise an application error with args and kwargs (binary among them), which each
# caller checks, e.g. the CBOR callee's error at the JSON caller. The sessions join alternately
# over --url and --rs-url (when given), in the order callee json, caller msgpack, callee msgpack,
# caller cbor, callee cbor, caller json, so that a router with two shards and round-robin
# placement puts callees on one shard and callers on the other (with --rs-url, the two listeners
# each deal round-robin too, so the shards mix). `--serializers json,msgpack` runs a subset. Each session checks
# that it got the serializer it asked for (WebSocket subprotocol / RawSocket serializer id).
# Prints `ok <step>` per step, then `PASS`; the first failure prints `FAIL <step>: <reason>` and
# exits 1. Bounded: every round trip by client.py's STEP_TIMEOUT_S, the whole run by 30 s, and a
# SIGALRM kill after 60 s.
#
# Usage: mixed.py --url ws://127.0.0.1:8080/ws [--rs-url rs://127.0.0.1:8081] --realm realm1
#        [--peer wampring|crossbar] [--serializers json,msgpack,cbor]

import argparse
import asyncio
import os
import signal
import sys

import client  # noqa: E402  (client.py beside this file: connect, rt, check, ...)
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallResult, PublishOptions, SubscribeOptions
from client import StepFailed, check, ok, rt, step
from edge_values import EDGE_ARGS, EDGE_KWARGS, first_difference

SERIALIZERS = ["json", "msgpack", "cbor"]
ECHO = "com.mixed.echo."
FAIL = "com.mixed.fail."
TOPIC = "com.mixed.topic"
MISMATCH = "com.mixed.error.mismatch"
CUSTOM = "com.mixed.error.custom"
ERROR_ARGS = [1, "zwei", b"\x00\xffdrei", 2**53 + 1, -0.5, {"nested": [b"", "ü"]}]
ERROR_KWARGS = {"bin": b"\x01\x02", "text": "ünïcødé 😀", "big": 2**64 - 1, "neg": -(2**63), "f": 0.25}
HARD_TIMEOUT_S = 30.0
KILL_TIMEOUT_S = 60

WIRE_NAMES = {"json": ("wamp.2.json", 1), "msgpack": ("wamp.2.msgpack", 2), "cbor": ("wamp.2.cbor", 3)}


async def join(url, ser, realm, name):
    session, details = await client.connect(url, ser, realm, name)
    proto = session.proto
    subprotocol, serializer_id = WIRE_NAMES[ser]
    if client.url_kind(url) == "websocket":
        check(proto.websocket_protocol_in_use == subprotocol,
              f"{name}: WebSocket subprotocol {proto.websocket_protocol_in_use!r}, want {subprotocol}")
    else:
        check(proto.serializer_id == serializer_id,
              f"{name}: RawSocket serializer id {proto.serializer_id}, want {serializer_id}")
    return session, details


async def scenario(args):
    step("join")
    urls = [args.url] + ([args.rs_url] if args.rs_url else [])
    sers = args.serializers
    order = []
    for i, ser in enumerate(sers):
        order += [("callee", ser), ("caller", sers[(i + 1) % len(sers)])]
    callees, callers = {}, {}
    for i, (role, ser) in enumerate(order):
        url = urls[i % len(urls)]
        session, _ = await join(url, ser, args.realm, f"{role}-{ser}")
        (callees if role == "callee" else callers)[ser] = session
        print(f"info {role}-{ser} joined over {client.url_kind(url)}", flush=True)
    ok("join")

    step("register")
    for ser, session in callees.items():
        def echo(*cargs, _ser=ser, **ckwargs):
            diff = first_difference(list(cargs), EDGE_ARGS, "args") or first_difference(ckwargs, EDGE_KWARGS, "kwargs")
            if diff:
                raise ApplicationError(MISMATCH, f"the {_ser} callee got changed values: {diff}")
            return CallResult(*cargs, **ckwargs)

        def fail(_ser=ser):
            raise ApplicationError(CUSTOM, *ERROR_ARGS, raised_by=_ser, **ERROR_KWARGS)

        await rt(session.register(echo, ECHO + ser), f"REGISTERED echo ({ser})")
        await rt(session.register(fail, FAIL + ser), f"REGISTERED fail ({ser})")
    ok("register")

    step("calls_across_serializers")
    for cser, caller in callers.items():
        for eser in callees:
            pair = f"{cser} caller -> {eser} callee"
            try:
                res = await rt(caller.call(ECHO + eser, *EDGE_ARGS, **EDGE_KWARGS), f"RESULT ({pair})")
            except ApplicationError as e:
                raise StepFailed(f"{pair}: ERROR {e.error} {e.args!r}") from None
            check(isinstance(res, CallResult), f"{pair}: echo returned {type(res).__name__}, want CallResult")
            diff = first_difference(list(res.results), EDGE_ARGS, "args") or \
                first_difference(res.kwresults, EDGE_KWARGS, "kwargs")
            check(diff is None, f"{pair}: the RESULT differs from what was sent: {diff}")
            print(f"info calls {pair}: ok", flush=True)
    ok("calls_across_serializers")

    step("errors_across_serializers")
    for cser, caller in callers.items():
        for eser in callees:
            pair = f"{eser} callee's error -> {cser} caller"
            try:
                res = await rt(caller.call(FAIL + eser), f"ERROR ({pair})")
                raise StepFailed(f"{pair}: got result {res!r}, want ERROR {CUSTOM}")
            except ApplicationError as e:
                check(e.error == CUSTOM, f"{pair}: ERROR {e.error}, want {CUSTOM}")
                diff = first_difference(list(e.args), ERROR_ARGS, "args") or \
                    first_difference(e.kwargs, dict(ERROR_KWARGS, raised_by=eser), "kwargs")
                check(diff is None, f"{pair}: the ERROR's payload differs from what was raised: {diff}")
    ok("errors_across_serializers")

    step("events_across_serializers")
    queues = {}
    subs = []
    for ser, session in callees.items():
        q = asyncio.Queue()
        queues[ser] = q

        def on_event(*eargs, details=None, _q=q, **ekwargs):
            _q.put_nowait((list(eargs), ekwargs, details))

        subs.append(await rt(session.subscribe(on_event, TOPIC, options=SubscribeOptions(details=True)),
                             f"SUBSCRIBED ({ser})"))
    for pser, publisher in callers.items():
        kwargs = dict(EDGE_KWARGS, publisher=pser)
        pub = await rt(publisher.publish(TOPIC, *EDGE_ARGS, options=PublishOptions(acknowledge=True), **kwargs),
                       f"PUBLISHED ({pser})")
        for sser, q in queues.items():
            pair = f"{pser} publisher -> {sser} subscriber"
            eargs, ekwargs, details = await rt(q.get(), f"EVENT ({pair})")
            diff = first_difference(eargs, EDGE_ARGS, "args") or first_difference(ekwargs, kwargs, "kwargs")
            check(diff is None, f"{pair}: the EVENT differs from what was published: {diff}")
            check(details.publication == pub.id, f"{pair}: publication {details.publication} != {pub.id}")
    ok("events_across_serializers")

    step("goodbye")
    for sub in subs:
        await rt(sub.unsubscribe(), "UNSUBSCRIBED")
    sessions = list(callees.values()) + list(callers.values())
    for s in sessions:
        s.leave()
    for s in sessions:
        details = await rt(asyncio.shield(s.left), f"GOODBYE reply to {s.name}")
        check(details.reason in ("wamp.close.goodbye_and_out", "wamp.close.normal"),
              f"{s.name} left with {details.reason!r}")
    ok("goodbye")


def main():
    p = argparse.ArgumentParser(description="mixed-serializer interop scenario (Autobahn|Python)")
    p.add_argument("--url", required=True, help="the router's WebSocket URL")
    p.add_argument("--rs-url", default="", help="the router's RawSocket URL (sessions alternate)")
    p.add_argument("--realm", default="realm1")
    p.add_argument("--peer", choices=["wampring", "crossbar"], default="wampring")
    p.add_argument("--serializers", default=",".join(SERIALIZERS),
                   help="comma-separated subset of json,msgpack,cbor (default: all three)")
    args = p.parse_args()
    args.serializers = args.serializers.split(",")
    if not args.serializers or any(s not in SERIALIZERS for s in args.serializers):
        raise SystemExit(f"--serializers: a comma-separated subset of {','.join(SERIALIZERS)}")
    client.PEER = args.peer

    def on_alarm(*_):
        print(f"FAIL {client._current_step}: hard kill timeout ({KILL_TIMEOUT_S}s)", flush=True)
        os._exit(3)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(KILL_TIMEOUT_S)
    print(f"info mixed url={args.url} rs_url={args.rs_url or '-'} serializers={','.join(args.serializers)}", flush=True)
    try:
        asyncio.run(asyncio.wait_for(scenario(args), HARD_TIMEOUT_S))
    except StepFailed as e:
        print(f"FAIL {client._current_step}: {e}", flush=True)
        os._exit(1)
    except asyncio.TimeoutError:
        print(f"FAIL {client._current_step}: timeout", flush=True)
        os._exit(1)
    except Exception as e:  # noqa: BLE001
        print(f"FAIL {client._current_step}: {type(e).__name__}: {e}", flush=True)
        os._exit(1)
    print("PASS", flush=True)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
