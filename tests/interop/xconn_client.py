#!/usr/bin/env python3
# Interop scenario for the xconn Python client (https://github.com/xconnio/xconn-python) with its
# defaults.
#
# Owned by the interop test harness (tests/interop/**, tests/interop.rs). Two sessions join
# through xconn's module-level asyncio `connect(url, realm)` (xconn.async_client.connect), which
# chooses no serializer here and so uses its default, CBOR (wamp.2.cbor over WebSocket, RawSocket
# serializer 3 over rs://). Each session prints `serializer <name>` with the serializer it got
# (and the negotiated WebSocket subprotocol), and the script fails unless both are CBOR, so that
# tests/interop.rs can also assert it. Then: register (add, echo, fail), call with args, call the
# echo with edge_values.py's payload (binary, 64-bit ints, floats, unicode, empty and nested
# values) compared strictly, an application error raised by the callee with its args, a call of
# an unknown procedure (wamp.error.no_such_procedure), a duplicate registration
# (wamp.error.procedure_already_exists), subscribe, publish with and without acknowledge (edge
# values again), unsubscribe (no more events), unregister, GOODBYE. xconn 0.5.1 has no
# progressive call results (its caller resolves a call at the first RESULT and its callee cannot
# send one with progress), so that feature is not exercised; the script says so in an `info`
# line. Each passed step prints `ok <step>`; the first failure prints `FAIL <step>: <reason>` and
# exits 1; PASS at the end. Bounded: each round trip 5 s, the whole run 30 s, SIGALRM after 60 s.
#
# Usage: xconn_client.py --url ws://127.0.0.1:8080/ws|rs://127.0.0.1:8081 --realm realm1

import argparse
import asyncio
import os
import signal
import sys

from wampproto import serializers
from xconn import async_client, helpers, types
from xconn.exception import ApplicationError

from edge_values import EDGE_ARGS, EDGE_KWARGS, first_difference

STEP_TIMEOUT_S = 5.0
QUIET_WAIT_S = 0.5
HARD_TIMEOUT_S = 30.0
KILL_TIMEOUT_S = 60

PROC_ADD = "com.xconn.add"
PROC_ECHO = "com.xconn.echo"
PROC_FAIL = "com.xconn.fail"
TOPIC = "com.xconn.topic"
CUSTOM_ERROR = "com.xconn.error.custom"
ERROR_ARGS = [1, "two", b"\x00three", 2**53 + 1]

_current_step = "start"


class StepFailed(Exception):
    pass


def step(name):
    global _current_step
    _current_step = name


def ok(name):
    print(f"ok {name}", flush=True)


def check(cond, msg):
    if not cond:
        raise StepFailed(msg)


async def rt(aw, what):
    try:
        return await asyncio.wait_for(aw, STEP_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise StepFailed(f"timeout ({STEP_TIMEOUT_S}s) waiting for {what}") from None


async def expect_error(aw, uri, what):
    try:
        res = await rt(aw, what)
    except ApplicationError as e:
        check(e.message == uri, f"{what}: error {e.message} {list(e.args)!r}, want {uri}")
        return e
    raise StepFailed(f"{what}: got {res!r}, want error {uri}")


def serializer_name(session):
    """The serializer the session uses, as WAMP names it, and how the router agreed to it."""
    ser = session._base_session.serializer
    names = {serializers.CBORSerializer: "cbor", serializers.JSONSerializer: "json",
             serializers.MsgPackSerializer: "msgpack"}
    name = names.get(type(ser), type(ser).__name__)
    transport = session._base_session.transport
    websocket = getattr(transport, "_websocket", None)
    if websocket is not None:
        agreed = f"websocket subprotocol={websocket.subprotocol}"
    else:
        # xconn's RawSocket handshake fails unless the router answers the serializer it asked
        agreed = f"rawsocket serializer_id={helpers.get_rs_protocol(ser)}"
    return name, agreed


async def scenario(args):
    step("join")
    # No serializer, no authenticator: xconn's defaults.
    a = await rt(async_client.connect(args.url, args.realm), "WELCOME (session A)")
    b = await rt(async_client.connect(args.url, args.realm), "WELCOME (session B)")
    for name, s in (("A", a), ("B", b)):
        ser, agreed = serializer_name(s)
        print(f"info xconn session {name} id={s._base_session.id} {agreed}", flush=True)
        print(f"serializer {ser}", flush=True)
        check(ser == "cbor", f"xconn's default serializer is {ser}, want cbor")
        if "subprotocol" in agreed:
            check(agreed.endswith("=wamp.2.cbor"), f"session {name}: {agreed}, want wamp.2.cbor")
    check(a._base_session.id != b._base_session.id, "both sessions got the same id")
    ok("join")

    step("router_sees_cbor")
    # The router's own view of session A (wamp.session.get): its transport's serializer.
    res = await rt(b.call("wamp.session.get", [a._base_session.id]), "RESULT wamp.session.get")
    info = (res.args or [None])[0]
    check(isinstance(info, dict) and isinstance(info.get("transport"), dict),
          f"wamp.session.get returned {res.args!r}")
    transport = info["transport"]
    if args.peer == "crossbar" and "serializer" not in transport:
        # Crossbar describes the transport with its own keys (websocket_protocol, ...)
        seen = {k: transport.get(k) for k in ("channel_framing", "channel_serializer", "websocket_protocol")}
        print(f"info crossbar-differs router_sees_cbor: transport without 'serializer': {seen!r}", flush=True)
        check("cbor" in (transport.get("channel_serializer"), (transport.get("websocket_protocol") or "")[7:]),
              f"crossbar reports session A's transport as {seen!r}, want cbor")
    else:
        check(transport.get("serializer") == "cbor",
              f"the router reports session A's serializer as {transport.get('serializer')!r}, want 'cbor'")
    ok("router_sees_cbor")

    step("register")

    async def add(inv: types.Invocation) -> types.Result:
        return types.Result(args=[inv.args[0] + inv.args[1]])

    async def echo(inv: types.Invocation) -> types.Result:
        return types.Result(args=inv.args, kwargs=inv.kwargs)

    async def fail(inv: types.Invocation) -> types.Result:
        raise ApplicationError(CUSTOM_ERROR, *ERROR_ARGS)

    reg_add = await rt(a.register(PROC_ADD, add), "REGISTERED add")
    reg_echo = await rt(a.register(PROC_ECHO, echo), "REGISTERED echo")
    reg_fail = await rt(a.register(PROC_FAIL, fail), "REGISTERED fail")
    for r in (reg_add, reg_echo, reg_fail):
        check(isinstance(r.registration_id, int) and r.registration_id > 0,
              f"bad registration id {r.registration_id!r}")
    await expect_error(b.register(PROC_ADD, add), "wamp.error.procedure_already_exists", "duplicate REGISTER")
    ok("register")

    step("call")
    res = await rt(b.call(PROC_ADD, [2, 3]), "RESULT add")
    check(res.args == [5], f"add(2, 3) returned {res.args!r}")
    ok("call")

    step("call_edge_values")
    res = await rt(b.call(PROC_ECHO, EDGE_ARGS, EDGE_KWARGS), "RESULT echo")
    diff = first_difference(list(res.args or []), EDGE_ARGS, "args") or \
        first_difference(res.kwargs or {}, EDGE_KWARGS, "kwargs")
    check(diff is None, f"echo of the edge values changed them: {diff}")
    ok("call_edge_values")

    step("call_error")
    e = await expect_error(b.call(PROC_FAIL), CUSTOM_ERROR, "ERROR from fail")
    diff = first_difference(list(e.args), ERROR_ARGS, "args")
    check(diff is None, f"the error's args differ from what the callee raised: {diff}")
    await expect_error(b.call("com.xconn.does_not_exist"), "wamp.error.no_such_procedure", "unknown procedure")
    ok("call_error")

    print("info xconn 0.5.1 has no progressive call results: not exercised", flush=True)

    step("subscribe")
    events: asyncio.Queue = asyncio.Queue()

    async def on_event(ev: types.Event):
        events.put_nowait(ev)

    sub = await rt(a.subscribe(TOPIC, on_event), "SUBSCRIBED")
    check(isinstance(sub.subscription_id, int) and sub.subscription_id > 0,
          f"bad subscription id {sub.subscription_id!r}")
    ok("subscribe")

    step("publish")
    await rt(b.publish(TOPIC, EDGE_ARGS, EDGE_KWARGS, options={"acknowledge": True}), "PUBLISHED")
    ev = await rt(events.get(), "EVENT (acknowledged publication)")
    diff = first_difference(list(ev.args or []), EDGE_ARGS, "args") or \
        first_difference(ev.kwargs or {}, EDGE_KWARGS, "kwargs")
    check(diff is None, f"the event's edge values differ from the published ones: {diff}")
    await rt(b.publish(TOPIC, ["no-ack", 1]), "PUBLISH without acknowledge")
    ev = await rt(events.get(), "EVENT (publication without acknowledge)")
    check(ev.args == ["no-ack", 1] and not ev.kwargs, f"event args={ev.args!r} kwargs={ev.kwargs!r}")
    ok("publish")

    step("unsubscribe")
    await rt(sub.unsubscribe(), "UNSUBSCRIBED")
    await rt(b.publish(TOPIC, ["after"], options={"acknowledge": True}), "PUBLISHED after unsubscribe")
    try:
        ev = await asyncio.wait_for(events.get(), QUIET_WAIT_S)
        raise StepFailed(f"event after unsubscribe: {ev!r}")
    except asyncio.TimeoutError:
        pass
    ok("unsubscribe")

    step("unregister")
    await rt(reg_add.unregister(), "UNREGISTERED add")
    await expect_error(b.call(PROC_ADD, [1, 2]), "wamp.error.no_such_procedure", "call after unregister")
    res = await rt(b.call(PROC_ECHO, ["still-there"]), "RESULT echo after unregister of add")
    check(res.args == ["still-there"], f"echo returned {res.args!r}")
    ok("unregister")

    step("goodbye")
    for s in (a, b):
        await rt(s.leave(), "GOODBYE")
    ok("goodbye")


def main():
    p = argparse.ArgumentParser(description="xconn (defaults) interop scenario")
    p.add_argument("--url", required=True)
    p.add_argument("--realm", default="realm1")
    p.add_argument("--peer", choices=["wampring", "crossbar"], default="wampring")
    args = p.parse_args()

    def on_alarm(*_):
        print(f"FAIL {_current_step}: hard kill timeout ({KILL_TIMEOUT_S}s)", flush=True)
        os._exit(3)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(KILL_TIMEOUT_S)
    print(f"info xconn url={args.url} realm={args.realm} peer={args.peer}", flush=True)
    try:
        asyncio.run(asyncio.wait_for(scenario(args), HARD_TIMEOUT_S))
    except StepFailed as e:
        print(f"FAIL {_current_step}: {e}", flush=True)
        os._exit(1)
    except asyncio.TimeoutError:
        print(f"FAIL {_current_step}: timeout", flush=True)
        os._exit(1)
    except Exception as e:  # noqa: BLE001
        print(f"FAIL {_current_step}: {type(e).__name__}: {e}", flush=True)
        os._exit(1)
    print("PASS", flush=True)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
