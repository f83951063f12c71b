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
# Progressive call results cross every pair too (and a chunk only CBOR carries ends the call
# for a caller that cannot take it: ERROR to the caller, INTERRUPT to the callee). Then the
# events the router keeps (a retained event, the event history of
# com.interop.history.exact) from every publisher's serializer to every reader's. A last step
# (cbor_only_values) sends what only CBOR carries (a non-text map key, an unknown tag,
# an integer past 2^64) and what JSON cannot (NaN, infinity, a text starting with NUL): untouched
# between the sessions that can take it, ERROR wamp.error.invalid_argument on a call whose other
# end cannot and on an acknowledged publication that a subscriber cannot take (delivered to
# every subscriber or refused whole), and without acknowledge no EVENT to a subscriber that
# cannot take it (the others get it).
# Prints `ok <step>` per step, then `PASS`; the first failure prints `FAIL <step>: <reason>` and
# exits 1. Bounded: every round trip by client.py's STEP_TIMEOUT_S, the whole run by 30 s, and a
# SIGALRM kill after 60 s.
#
# Usage: mixed.py --url ws://127.0.0.1:8080/ws [--rs-url rs://127.0.0.1:8081] --realm realm1
#        [--peer wampring|crossbar] [--serializers json,msgpack,cbor]
#        [--check-cbor-only-progress] [--check-kept-cbor-only]
# The two --check flags add wampring's rules for what only CBOR carries (see
# progressive_results and kept_cbor_only); the Rust tests pass both.

import argparse
import asyncio
import os
import signal
import sys

import cbor2
import client  # noqa: E402  (client.py beside this file: connect, rt, check, ...)
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions, CallResult, PublishOptions, RegisterOptions, SubscribeOptions
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

    await progressive_results(args, callees, callers)

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

    await stored_events(args, callees, callers)

    if "cbor" in callees and len(callees) > 1:
        await cbor_only_values(args, callees, callers, queues)

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


PROGRESS = "com.mixed.progress."


async def progressive_results(args, callees, callers):
    """Progressive call results (each chunk a RESULT with progress, transcoded on its own) from
    every callee's serializer to every caller's. With --check-cbor-only-progress, then a CBOR
    callee whose third chunk only CBOR carries: a JSON or MessagePack caller gets the first two,
    then ERROR wamp.error.invalid_argument, and the callee an INTERRUPT (its handler is
    cancelled); a CBOR caller gets the three chunks untouched and the final result. That holds
    when caller and callee share a shard; across shards (two shards, round-robin) wampring as of
    the merge of "wire: CBOR" drops the chunk silently instead (no ERROR, no INTERRUPT, and the
    caller gets the final RESULT with a chunk missing), so tests/interop.rs passes the flag only
    at one shard."""
    step("progressive_across_serializers")
    for ser, session in callees.items():
        async def chunks(bad=False, details=None):
            if details.progress:
                details.progress(*EDGE_ARGS, **EDGE_KWARGS)
                details.progress("second", b"\x00\x01", nested={"f": 0.5})
                if bad:
                    details.progress(cbor2.CBORTag(4242, "only cbor"))
                    try:
                        await asyncio.sleep(2)
                    except asyncio.CancelledError:
                        interrupted.append(True)
                        raise
            return CallResult("done", 2**64 - 1)

        await rt(session.register(chunks, PROGRESS + ser, options=RegisterOptions(details=True)),
                 f"REGISTERED progress ({ser})")
    interrupted = []
    want_chunks = [(EDGE_ARGS, EDGE_KWARGS), (["second", b"\x00\x01"], {"nested": {"f": 0.5}})]
    for cser, caller in callers.items():
        for eser in callees:
            pair = f"{eser} callee's progressive results -> {cser} caller"
            got = []
            res = await rt(caller.call(PROGRESS + eser, options=CallOptions(
                on_progress=lambda *a, **k: got.append((list(a), k)))), f"RESULT ({pair})")
            check(len(got) == 2, f"{pair}: {len(got)} progressive results, want 2")
            for (gargs, gkwargs), (wargs, wkwargs) in zip(got, want_chunks):
                diff = first_difference(gargs, wargs, "args") or first_difference(gkwargs, wkwargs, "kwargs")
                check(diff is None, f"{pair}: a progressive result differs from what the callee sent: {diff}")
            check(isinstance(res, CallResult) and first_difference(list(res.results), ["done", 2**64 - 1]) is None,
                  f"{pair}: final result {res!r}")
    if args.check_cbor_only_progress and "cbor" in callees and client.PEER != "crossbar":
        for cser, caller in callers.items():
            pair = f"cbor callee's cbor-only progressive result -> {cser} caller"
            got = []
            call = caller.call(PROGRESS + "cbor", bad=True, options=CallOptions(
                on_progress=lambda *a, **k: got.append((list(a), k))))
            if cser == "cbor":
                res = await rt(call, f"RESULT ({pair})")
                check(len(got) == 3 and got[2] == ([cbor2.CBORTag(4242, "only cbor")], {}),
                      f"{pair}: progressive results {got[2:]!r}")
                check(list(res.results)[0] == "done", f"{pair}: final result {res!r}")
                continue
            n = len(interrupted)
            await expect_refused(call, pair)
            check(len(got) == 2, f"{pair}: {len(got)} progressive results before the ERROR, want 2")
            for _ in range(int(STEP_WAIT_S / 0.05)):
                if len(interrupted) > n:
                    break
                await asyncio.sleep(0.05)
            check(len(interrupted) == n + 1, f"{pair}: the callee's handler was not interrupted")
    ok("progressive_across_serializers")


STEP_WAIT_S = 1.5
HIST_EXACT = "com.interop.history.exact"  # the router keeps its events (tests/interop.rs, crossbar/config.json)
GET_EVENTS = "wamp.subscription.get_events"


async def stored_events(args, callees, callers):
    """Events the router keeps and hands out later, in the reader's serializer: a retained
    event (get_retained on SUBSCRIBE) and the event history (wamp.subscription.get_events,
    whose RESULT nests each event's args and kwargs), from every publisher's serializer to
    every reader's."""
    step("retained_events_across_serializers")
    run = os.urandom(3).hex()
    for pser, publisher in callers.items():
        topic = f"com.mixed.retained.{run}.{pser}"
        await rt(publisher.publish(topic, *EDGE_ARGS, options=PublishOptions(acknowledge=True, retain=True),
                                   **EDGE_KWARGS), f"PUBLISHED retained ({pser})")
    for sser, session in callees.items():
        for pser in callers:
            pair = f"{pser} publisher -> {sser} subscriber"
            q = asyncio.Queue()

            def on_event(*eargs, details=None, _q=q, **ekwargs):
                _q.put_nowait((list(eargs), ekwargs, details))

            sub = await rt(session.subscribe(on_event, f"com.mixed.retained.{run}.{pser}",
                                             options=SubscribeOptions(get_retained=True, details=True)),
                           f"SUBSCRIBED with get_retained ({pair})")
            eargs, ekwargs, details = await rt(q.get(), f"retained EVENT ({pair})")
            diff = first_difference(eargs, EDGE_ARGS, "args") or first_difference(ekwargs, EDGE_KWARGS, "kwargs")
            check(diff is None, f"{pair}: the retained EVENT differs from what was published: {diff}")
            check(details.retained is True, f"{pair}: retained EVENT without Details.retained: {details!r}")
            await rt(sub.unsubscribe(), "UNSUBSCRIBED retained")
    ok("retained_events_across_serializers")

    step("event_history_across_serializers")
    # The first callee's subscription, so that get_events has a subscription id to name.
    reader = next(iter(callees.values()))
    sub = await rt(reader.subscribe(lambda *a, **k: None, HIST_EXACT), "SUBSCRIBED history")
    for pser, publisher in callers.items():
        await rt(publisher.publish(HIST_EXACT, *EDGE_ARGS, options=PublishOptions(acknowledge=True),
                                   run=run, publisher=pser, **EDGE_KWARGS), f"PUBLISHED history ({pser})")
    for cser, caller in callers.items():
        events = await rt(caller.call(GET_EVENTS, sub.id), f"RESULT get_events ({cser} caller)")
        check(isinstance(events, list), f"get_events answered {events!r}")
        ours = [e for e in events if isinstance(e, dict) and (e.get("kwargs") or {}).get("run") == run]
        got_from = sorted(e["kwargs"].get("publisher") for e in ours)
        if client.PEER == "crossbar" and got_from != sorted(callers):
            client.crossbar_differs("event_history_across_serializers", f"get_events kept {got_from!r}")
            continue
        check(got_from == sorted(callers), f"{cser} caller: get_events has our events from {got_from!r}")
        for e in ours:
            pser = e["kwargs"]["publisher"]
            pair = f"{pser} publisher -> history -> {cser} caller"
            want_kwargs = dict(EDGE_KWARGS, run=run, publisher=pser)
            diff = first_difference(e.get("args"), EDGE_ARGS, "args") or \
                first_difference(e.get("kwargs"), want_kwargs, "kwargs")
            check(diff is None, f"{pair}: the kept event differs from what was published: {diff}")
    await rt(sub.unsubscribe(), "UNSUBSCRIBED history")
    ok("event_history_across_serializers")


# Values that CBOR carries and that wampring does not transcode (src/wire/cbor.rs): a map with
# a non-text key, a tag other than the bignums and self-describe, an integer past 2^64 (a
# bignum), negative integers below -2^63 (major type 1: -2^63 - 1 and -2^64); and values that JSON cannot carry: NaN, infinity, a string that starts with NUL (it
# would read as binary in WAMP's JSON).
CBOR_ONLY = [{1: "int key"}, cbor2.CBORTag(4242, "tagged"), 2**70, -(2**63) - 1, -(2**64)]
NOT_JSON = [float("nan"), float("inf"), "\x00 text, not binary"]
RAW = "com.mixed.raw."
INVALID_ARGUMENT = "wamp.error.invalid_argument"


async def no_event(q, what):
    try:
        ev = await asyncio.wait_for(q.get(), client.QUIET_WAIT_S)
    except asyncio.TimeoutError:
        return
    raise StepFailed(f"{what}: unexpected EVENT {ev[0]!r} {ev[1]!r}")


async def expect_refused(aw, what):
    """The router refuses to transcode: ERROR wamp.error.invalid_argument to the caller."""
    try:
        res = await rt(aw, f"ERROR {INVALID_ARGUMENT} ({what})")
    except ApplicationError as e:
        if client.PEER == "crossbar" and e.error != INVALID_ARGUMENT:
            client.crossbar_differs("cbor_only_values", f"{what}: ERROR {e.error}")
            return
        check(e.error == INVALID_ARGUMENT, f"{what}: ERROR {e.error} {list(e.args)!r}, want {INVALID_ARGUMENT}")
        return
    if client.PEER == "crossbar":
        client.crossbar_differs("cbor_only_values", f"{what}: transcoded to {res!r}")
        return
    raise StepFailed(f"{what}: got {res!r}, want ERROR {INVALID_ARGUMENT}")


async def cbor_only_values(args, callees, callers, queues):
    """What the router does with values another serializer cannot carry: forwarded untouched
    between CBOR sessions; refused (ERROR wamp.error.invalid_argument) on a call whose other end
    cannot take them, whichever way; an acknowledged publication refused whole (the same ERROR,
    no EVENT to anyone); an unacknowledged one delivered only to the subscribers that can take
    it."""
    step("cbor_only_values")
    if client.PEER == "crossbar":
        # Crossbar transcodes through Python objects: a JSON callee gets {1: ...} as {"1": ...}, a
        # MessagePack peer gets an int map key that Autobahn's unpacker refuses (the session is
        # dropped), and a tag or NaN for a JSON peer never answers. Only wampring's rules are
        # asserted here.
        client.crossbar_differs("cbor_only_values", "transcodes what it can and drops sessions otherwise: skipped")
        return

    for ser, session in callees.items():
        def raw_echo(*cargs, **ckwargs):
            return CallResult(*cargs, **ckwargs)

        await rt(session.register(raw_echo, RAW + ser), f"REGISTERED raw echo ({ser})")

    def cbor_only_answer():
        return CallResult(*CBOR_ONLY)

    await rt(callees["cbor"].register(cbor_only_answer, RAW + "answer"), "REGISTERED cbor-only answer")

    for value in CBOR_ONLY:
        # CBOR to CBOR: untouched
        res = await rt(callers["cbor"].call(RAW + "cbor", value), f"RESULT raw echo of {value!r} (cbor -> cbor)")
        diff = first_difference(res, value)
        check(diff is None, f"cbor caller -> cbor callee: {value!r} came back changed: {diff}")
        for eser in callees:
            if eser != "cbor":
                await expect_refused(callers["cbor"].call(RAW + eser, value), f"cbor caller -> {eser} callee: {value!r}")
    res = await rt(callers["cbor"].call(RAW + "answer"), "RESULT cbor-only answer (cbor caller)")
    diff = first_difference(list(res.results), CBOR_ONLY)
    check(diff is None, f"the cbor callee's cbor-only answer reached the cbor caller changed: {diff}")
    for cser in callers:
        if cser != "cbor":
            await expect_refused(callers[cser].call(RAW + "answer"), f"cbor callee's cbor-only answer -> {cser} caller")

    for value in NOT_JSON:
        for cser in ("cbor", "msgpack"):
            if cser not in callers:
                continue
            for eser in callees:
                if eser == "json":
                    await expect_refused(callers[cser].call(RAW + "json", value), f"{cser} caller -> json callee: {value!r}")
                else:
                    res = await rt(callers[cser].call(RAW + eser, value), f"RESULT raw echo of {value!r}")
                    diff = first_difference(res, value)
                    check(diff is None, f"{cser} caller -> {eser} callee: {value!r} came back changed: {diff}")

    # An acknowledged publication is delivered to every subscriber or refused whole: with
    # subscribers that cannot take it, ERROR wamp.error.invalid_argument and no EVENT at all.
    await expect_refused(
        callers["cbor"].publish(TOPIC, *CBOR_ONLY, options=PublishOptions(acknowledge=True)),
        "acknowledged PUBLISH of cbor-only values to json, msgpack and cbor subscribers")
    for sser, q in queues.items():
        await no_event(q, f"the {sser} subscriber after the refused publication")
    # Without acknowledge: the CBOR subscriber gets it untouched, the others nothing.
    callers["cbor"].publish(TOPIC, *CBOR_ONLY)
    eargs, _, _ = await rt(queues["cbor"].get(), "EVENT with cbor-only values (cbor subscriber)")
    diff = first_difference(eargs, CBOR_ONLY)
    check(diff is None, f"the cbor subscriber got the cbor-only values changed: {diff}")
    for sser, q in queues.items():
        if sser != "cbor":
            await no_event(q, f"the {sser} subscriber, for an event the router cannot transcode")
    if args.check_kept_cbor_only:
        await kept_cbor_only(callees, callers)

    # ... and everyone is still subscribed and served.
    await rt(callers["cbor"].publish(TOPIC, "after", options=PublishOptions(acknowledge=True)), "PUBLISHED after")
    for sser, q in queues.items():
        eargs, _, _ = await rt(q.get(), f"EVENT after the cbor-only one ({sser} subscriber)")
        check(eargs == ["after"], f"the {sser} subscriber got {eargs!r}, want ['after']")
    ok("cbor_only_values")


async def kept_cbor_only(callees, callers):
    """--check-kept-cbor-only: an event with a value only CBOR carries is delivered to a CBOR
    subscriber but not kept in the event history (wampring keeps only what every reader can
    read back as values; it counts and logs what it skips), and it does not keep the other
    events from any reader: every serializer's get_events answers, with the plain event."""
    step("kept_cbor_only_event")
    reader = callees["cbor"]
    sub = await rt(reader.subscribe(lambda *a, **k: None, HIST_EXACT), "SUBSCRIBED history")
    marker = os.urandom(3).hex()
    callers["cbor"].publish(HIST_EXACT, {1: "int key"}, marker)
    callers["cbor"].publish(HIST_EXACT, "plain", marker)
    await asyncio.sleep(client.QUIET_WAIT_S)
    for cser, caller in callers.items():
        try:
            events = await rt(caller.call(GET_EVENTS, sub.id), f"RESULT get_events ({cser} caller)")
        except ApplicationError as e:
            raise StepFailed(f"get_events from the {cser} caller: ERROR {e.error} {list(e.args)!r}") from None
        ours = [e.get("args") for e in events if isinstance(e, dict) and marker in (e.get("args") or [])]
        want = [["plain", marker]]
        check(ours == want, f"get_events from the {cser} caller: our events {ours!r}, want {want!r}")
    await rt(sub.unsubscribe(), "UNSUBSCRIBED history")
    ok("kept_cbor_only_event")


def main():
    p = argparse.ArgumentParser(description="mixed-serializer interop scenario (Autobahn|Python)")
    p.add_argument("--url", required=True, help="the router's WebSocket URL")
    p.add_argument("--rs-url", default="", help="the router's RawSocket URL (sessions alternate)")
    p.add_argument("--realm", default="realm1")
    p.add_argument("--peer", choices=["wampring", "crossbar"], default="wampring")
    p.add_argument("--serializers", default=",".join(SERIALIZERS),
                   help="comma-separated subset of json,msgpack,cbor (default: all three)")
    p.add_argument("--check-cbor-only-progress", action="store_true",
                   help="also check a progressive result only CBOR carries (see progressive_results)")
    p.add_argument("--check-kept-cbor-only", action="store_true",
                   help="also check that a kept event with a CBOR-only value stays readable (see kept_cbor_only)")
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
