#!/usr/bin/env python3
# WAMP interop scenario runner using Autobahn|Python (asyncio flavour).
#
# Owned by the interop test harness (tests/interop/**, tests/interop.rs).
# Connects two real Autobahn sessions (a callee/subscriber "A" and a
# caller/publisher "B") to a router and walks through the basic-profile
# scenario: RPC with args/kwargs, application errors, the router's own
# wamp.session.count meta procedure, the router's wamp.session.on_join /
# on_leave meta events (for a third session C), pub/sub with and without
# acknowledge, publisher exclusion, unsubscribe, unregister, a shared
# (invoke='roundrobin') registration that both sessions join, and a clean
# GOODBYE. Each passed step prints `ok <step>`; the first failure prints
# `FAIL <step>: <reason>` and exits non-zero. A hard timeout guarantees exit.
#
# Usage:
#   client.py --url ws://127.0.0.1:8080/ws --serializer json --realm realm1
#   client.py --url rs://127.0.0.1:8081    --serializer msgpack
# (`tcp://host:port` is accepted as a synonym for `rs://host:port`.)

import argparse
import asyncio
import os
import signal
import sys
import urllib.parse

import txaio

txaio.use_asyncio()

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory  # noqa: E402
from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer  # noqa: E402
from autobahn.wamp.types import (  # noqa: E402
    CallResult,
    ComponentConfig,
    PublishOptions,
    RegisterOptions,
    SubscribeOptions,
)

HARD_TIMEOUT_S = 20.0  # whole scenario, enforced by asyncio
KILL_TIMEOUT_S = 25  # last resort: SIGALRM -> os._exit, even if the loop hangs
STEP_TIMEOUT_S = 5.0  # any single network round trip
QUIET_WAIT_S = 0.5  # how long we wait to be sure that *no* event arrives

PROC_ADD = "com.interop.add"
PROC_ECHO = "com.interop.echo"
PROC_FAIL = "com.interop.fail"
PROC_SHARED = "com.interop.shared"
TOPIC = "com.interop.topic"
CUSTOM_ERROR = "com.interop.error.custom"

# Values chosen to exercise the serializers (unicode, floats, negatives,
# nesting, null, bools, a >32-bit integer that is still JS-safe).
ECHO_ARGS = [1, "two", 3.5, -7, None, True, False, "ünïcødé ✓", [1, [2, {"x": "y"}]], 2**40]
ECHO_KWARGS = {"a": 1, "b": "c", "nested": {"list": [1, 2, 3], "f": 0.25}, "empty": {}}


class StepFailed(Exception):
    pass


_current_step = "start"


def step(name):
    global _current_step
    _current_step = name


def ok(name):
    print(f"ok {name}", flush=True)


def check(cond, msg):
    if not cond:
        raise StepFailed(msg)


class Session(ApplicationSession):
    """An ApplicationSession that exposes join/leave/disconnect as futures."""

    def __init__(self, config, name):
        super().__init__(config)
        self.name = name
        loop = asyncio.get_event_loop()
        self.joined = loop.create_future()
        self.left = loop.create_future()
        self.disconnected = loop.create_future()

    def onJoin(self, details):
        if not self.joined.done():
            self.joined.set_result(details)

    def onLeave(self, details):
        if not self.left.done():
            self.left.set_result(details)
        # default behaviour: errback outstanding requests and close transport
        return super().onLeave(details)

    def onDisconnect(self):
        if not self.disconnected.done():
            self.disconnected.set_result(True)
        return super().onDisconnect()


def make_serializer(name):
    if name == "json":
        return JsonSerializer()
    if name == "msgpack":
        return MsgPackSerializer()
    raise SystemExit(f"unknown serializer {name!r}")


async def connect(url, serializer, realm, name):
    loop = asyncio.get_event_loop()
    session = Session(ComponentConfig(realm=realm), name)
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname, parsed.port
    if parsed.scheme == "ws":
        factory = WampWebSocketClientFactory(
            lambda: session, url=url, serializers=[make_serializer(serializer)]
        )
    elif parsed.scheme in ("rs", "tcp"):
        factory = WampRawSocketClientFactory(
            lambda: session, serializer=make_serializer(serializer)
        )
    else:
        raise SystemExit(f"unsupported url scheme in {url!r}")
    check(host and port, f"url {url!r} needs host and port")
    _, proto = await asyncio.wait_for(loop.create_connection(factory, host, port), STEP_TIMEOUT_S)

    done, _ = await asyncio.wait(
        [session.joined, session.left, session.disconnected],
        timeout=STEP_TIMEOUT_S,
        return_when=asyncio.FIRST_COMPLETED,
    )
    if session.joined.done():
        if parsed.scheme == "ws":
            print(f"info {name} websocket subprotocol={proto.websocket_protocol_in_use}", flush=True)
        else:
            print(f"info {name} rawsocket serializer_id={proto.serializer_id} "
                  f"peer_max_len={proto.max_length_send}", flush=True)
        return session, session.joined.result()
    if session.left.done():
        d = session.left.result()
        raise StepFailed(f"session {name} aborted: reason={d.reason} message={d.message}")
    if session.disconnected.done():
        raise StepFailed(f"session {name}: transport closed before WELCOME")
    raise StepFailed(f"session {name}: no WELCOME within {STEP_TIMEOUT_S}s")


async def rt(aw, what):
    """One bounded network round trip; `what` names the awaited reply."""
    try:
        return await asyncio.wait_for(aw, STEP_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise StepFailed(f"timeout ({STEP_TIMEOUT_S}s) waiting for {what}") from None


async def expect_app_error(aw, uri):
    try:
        res = await rt(aw, f"ERROR {uri}")
    except ApplicationError as e:
        check(e.error == uri, f"expected error {uri}, got {e.error} args={e.args} kwargs={e.kwargs}")
        return e
    raise StepFailed(f"expected error {uri}, got result {res!r}")


async def no_event(queue, what):
    try:
        ev = await asyncio.wait_for(queue.get(), QUIET_WAIT_S)
    except asyncio.TimeoutError:
        return
    raise StepFailed(f"{what}: unexpected event {ev!r}")


async def scenario(args):
    step("join")
    a, da = await connect(args.url, args.serializer, args.realm, "A")
    b, db = await connect(args.url, args.serializer, args.realm, "B")
    check(isinstance(da.session, int) and isinstance(db.session, int), "session ids are not ints")
    check(da.session != db.session, f"both sessions got the same id {da.session}")
    check(da.realm == args.realm, f"joined realm {da.realm!r} != {args.realm!r}")
    ok("join")

    # ------------------------------------------------------------------ RPC
    step("register")

    def add(x, y):
        return x + y

    def echo(*cargs, **ckwargs):
        return CallResult(*cargs, **ckwargs)

    def fail():
        raise ApplicationError(CUSTOM_ERROR, 1, "two", foo="bar")

    reg_add = await rt(a.register(add, PROC_ADD), "REGISTERED add")
    reg_echo = await rt(a.register(echo, PROC_ECHO), "REGISTERED echo")
    reg_fail = await rt(a.register(fail, PROC_FAIL), "REGISTERED fail")
    for r in (reg_add, reg_echo, reg_fail):
        check(isinstance(r.id, int) and r.id > 0, f"bad registration id {r.id!r}")
    ok("register")

    step("register_duplicate")
    await expect_app_error(b.register(add, PROC_ADD), "wamp.error.procedure_already_exists")
    ok("register_duplicate")

    step("call_add")
    res = await rt(b.call(PROC_ADD, 2, 3), "RESULT add")
    check(res == 5, f"add(2,3) returned {res!r}")
    ok("call_add")

    step("call_echo")
    res = await rt(b.call(PROC_ECHO, *ECHO_ARGS, **ECHO_KWARGS), "RESULT echo")
    check(isinstance(res, CallResult), f"echo returned {type(res).__name__} {res!r}, want CallResult")
    check(list(res.results) == ECHO_ARGS, f"echo args {res.results!r} != {ECHO_ARGS!r}")
    check(res.kwresults == ECHO_KWARGS, f"echo kwargs {res.kwresults!r} != {ECHO_KWARGS!r}")
    ok("call_echo")

    step("call_echo_kwargs_only")
    res = await rt(b.call(PROC_ECHO, only="kw"), "RESULT echo kwargs-only")
    check(isinstance(res, CallResult), f"echo returned {res!r}, want CallResult")
    check(list(res.results) == [] and res.kwresults == {"only": "kw"}, f"echo returned {res!r}")
    ok("call_echo_kwargs_only")

    step("call_echo_large")
    big = "x" * 200_000 + "ü"  # > 64 KiB: 64-bit WebSocket length, big RawSocket frame
    res = await rt(b.call(PROC_ECHO, big), "RESULT echo large")
    check(res == big, f"large echo returned {len(res) if isinstance(res, str) else res!r} chars")
    ok("call_echo_large")

    step("call_concurrent")
    results = await rt(asyncio.gather(*(b.call(PROC_ADD, i, i) for i in range(50))), "50 concurrent RESULTs")
    check(results == [2 * i for i in range(50)], f"concurrent add results {results!r}")
    ok("call_concurrent")

    step("call_error")
    e = await expect_app_error(b.call(PROC_FAIL), CUSTOM_ERROR)
    check(list(e.args) == [1, "two"], f"error args {e.args!r} != [1, 'two']")
    check(e.kwargs == {"foo": "bar"}, f"error kwargs {e.kwargs!r} != {{'foo': 'bar'}}")
    ok("call_error")

    step("call_no_such_procedure")
    await expect_app_error(b.call("com.interop.does_not_exist"), "wamp.error.no_such_procedure")
    ok("call_no_such_procedure")

    step("publish_reserved_topic")
    # wamp.* topics are the router's (its meta events): an acknowledged PUBLISH there is refused
    # with the error Crossbar.io gives; the session stays usable.
    await expect_app_error(
        a.publish("wamp.session.on_join", {"session": 1}, options=PublishOptions(acknowledge=True)),
        "wamp.error.invalid_uri")
    await expect_app_error(b.call("com.interop.does_not_exist"), "wamp.error.no_such_procedure")
    ok("publish_reserved_topic")

    if args.subscription_limit:
        step("subscription_limit")
        # The router was started with limits.max_subscriptions_per_session = N (tests/interop.rs
        # passes N): B holds no subscription yet, so N SUBSCRIBEs succeed, the next gets
        # wampring.error.too_many_subscriptions, and after an UNSUBSCRIBE there is room again.
        def ignore(*_args, **_kwargs):
            pass

        limit_subs = []
        for i in range(args.subscription_limit):
            limit_subs.append(await rt(b.subscribe(ignore, f"com.interop.limit.{i}"), f"SUBSCRIBED limit {i}"))
        await expect_app_error(b.subscribe(ignore, "com.interop.limit.over"),
                               "wampring.error.too_many_subscriptions")
        await rt(limit_subs[0].unsubscribe(), "UNSUBSCRIBED limit 0")
        limit_subs[0] = await rt(b.subscribe(ignore, "com.interop.limit.again"), "SUBSCRIBED after UNSUBSCRIBE")
        for sub in limit_subs:
            await rt(sub.unsubscribe(), "UNSUBSCRIBED limit")
        ok("subscription_limit")

    step("session_count")
    # The router answers wamp.session.count itself (the same from any shard). This router was
    # started for this run alone, so exactly our two sessions (A and B, both anonymous) are in
    # the realm; ask from both, which with two shards sit on different shards.
    joined = 2
    for s in (a, b):
        res = await rt(s.call("wamp.session.count"), f"RESULT wamp.session.count ({s.name})")
        check(isinstance(res, int) and not isinstance(res, bool) and res >= joined,
              f"wamp.session.count from {s.name} returned {res!r}, want an integer >= {joined}")
        check(res == joined, f"wamp.session.count from {s.name} returned {res}, want {joined}")
        res = await rt(s.call("wamp.session.count", ["anonymous"]),
                       f"RESULT wamp.session.count(['anonymous']) ({s.name})")
        check(res == joined and not isinstance(res, bool),
              f"wamp.session.count(['anonymous']) from {s.name} returned {res!r}, want {joined}")
        res = await rt(s.call("wamp.session.count", ["admin"]),
                       f"RESULT wamp.session.count(['admin']) ({s.name})")
        check(res == 0 and not isinstance(res, bool),
              f"wamp.session.count(['admin']) from {s.name} returned {res!r}, want 0")
    await expect_app_error(b.call("wamp.session.frobnicate"), "wamp.error.no_such_procedure")
    await expect_app_error(b.call("wamp.session.count", "x"), "wamp.error.invalid_argument")
    ok("session_count")

    step("session_meta_events")
    # The router publishes wamp.session.on_join / on_leave itself (digest §10), from the shard
    # of the session they are about to subscribers on every shard. A and B subscribe (with two
    # shards and round-robin placement they sit on different shards, so one of them always gets
    # the events across the shard channels); then a third session C joins and leaves with
    # GOODBYE. Placed after session_count, which asserts that exactly A and B are joined.
    # Meta events about other sessions are ignored (filtered by session id).
    meta_q = {s.name: asyncio.Queue() for s in (a, b)}
    meta_subs = []
    for s in (a, b):
        q = meta_q[s.name]
        for topic in ("wamp.session.on_join", "wamp.session.on_leave"):
            def on_meta(*eargs, details=None, _topic=topic, _q=q, **ekwargs):
                _q.put_nowait((_topic, list(eargs), ekwargs))

            meta_subs.append(await rt(s.subscribe(on_meta, topic, options=SubscribeOptions(details=True)),
                                      f"SUBSCRIBED {topic} ({s.name})"))
    c, dc = await connect(args.url, args.serializer, args.realm, "C")
    new_id = dc.session
    check(isinstance(new_id, int) and new_id not in (da.session, db.session),
          f"session C got id {new_id!r} (A={da.session}, B={db.session})")
    c.leave()
    details = await rt(asyncio.shield(c.left), "GOODBYE reply to session C")
    check(details.reason in ("wamp.close.goodbye_and_out", "wamp.close.normal"),
          f"session C left with reason {details.reason!r} ({details.message!r})")
    await rt(asyncio.shield(c.disconnected), "transport close of session C after GOODBYE")

    async def next_meta(q, who):
        """The next meta event in `q` about session C: (topic, args, kwargs)."""
        while True:
            topic, eargs, ekwargs = await rt(q.get(), f"meta EVENT about session C ({who})")
            if topic == "wamp.session.on_join":
                if eargs and isinstance(eargs[0], dict) and eargs[0].get("session") == new_id:
                    return topic, eargs, ekwargs
            elif eargs and eargs[0] == new_id:
                return topic, eargs, ekwargs

    want_transport = "websocket" if urllib.parse.urlsplit(args.url).scheme == "ws" else "rawsocket"
    for s in (a, b):
        topic, eargs, ekwargs = await next_meta(meta_q[s.name], s.name)
        check(topic == "wamp.session.on_join",
              f"{s.name}: first meta event about session C is {topic} {eargs!r}, want wamp.session.on_join")
        check(len(eargs) == 1 and not ekwargs,
              f"{s.name}: on_join args={eargs!r} kwargs={ekwargs!r}, want one positional dict")
        info = eargs[0]
        check(info.get("authrole") == "anonymous" and info.get("authmethod") == "anonymous",
              f"{s.name}: on_join authrole/authmethod in {info!r}, want anonymous/anonymous")
        check(info.get("authid") == str(new_id), f"{s.name}: on_join authid {info.get('authid')!r} != {str(new_id)!r}")
        check(info.get("authprovider") == "static", f"{s.name}: on_join authprovider {info.get('authprovider')!r}")
        tr = info.get("transport")
        check(isinstance(tr, dict), f"{s.name}: on_join transport {tr!r} is not a dict")
        check(tr.get("type") == want_transport and tr.get("serializer") == args.serializer,
              f"{s.name}: on_join transport {tr!r}, want type={want_transport} serializer={args.serializer}")
        check(isinstance(tr.get("peer"), str) and tr["peer"].startswith("127.0.0.1:"),
              f"{s.name}: on_join transport peer {tr.get('peer')!r}, want 127.0.0.1:PORT")
        topic, eargs, ekwargs = await next_meta(meta_q[s.name], s.name)
        check(topic == "wamp.session.on_leave",
              f"{s.name}: second meta event about session C is {topic} {eargs!r}, want wamp.session.on_leave")
        check(eargs == [new_id, str(new_id), "anonymous"] and not ekwargs,
              f"{s.name}: on_leave args={eargs!r} kwargs={ekwargs!r}, want [{new_id}, {str(new_id)!r}, 'anonymous']")
    for sub in meta_subs:
        await rt(sub.unsubscribe(), "UNSUBSCRIBED meta topic")
        check(not sub.active, "meta subscription still active after unsubscribe")
    ok("session_meta_events")

    # -------------------------------------------------------------- PubSub
    step("subscribe")
    qa: asyncio.Queue = asyncio.Queue()
    qb: asyncio.Queue = asyncio.Queue()

    def on_a(*eargs, details=None, **ekwargs):
        qa.put_nowait((list(eargs), ekwargs, details))

    def on_b(*eargs, details=None, **ekwargs):
        qb.put_nowait((list(eargs), ekwargs, details))

    sub_a = await rt(a.subscribe(on_a, TOPIC, options=SubscribeOptions(details=True)), "SUBSCRIBED A")
    sub_b = await rt(b.subscribe(on_b, TOPIC, options=SubscribeOptions(details=True)), "SUBSCRIBED B")
    check(isinstance(sub_a.id, int) and sub_a.id > 0, f"bad subscription id {sub_a.id!r}")
    ok("subscribe")

    step("publish_noack")
    pub = b.publish(TOPIC, 1, "x", k="v")
    check(pub is None, f"publish without acknowledge returned {pub!r}")
    ev_args, ev_kwargs, _ = await rt(qa.get(), "EVENT (publish without acknowledge)")
    check(ev_args == [1, "x"] and ev_kwargs == {"k": "v"}, f"event args={ev_args!r} kwargs={ev_kwargs!r}")
    ok("publish_noack")

    step("publish_ack")
    pub = await rt(b.publish(TOPIC, *ECHO_ARGS, options=PublishOptions(acknowledge=True), **ECHO_KWARGS), "PUBLISHED")
    check(pub is not None and isinstance(pub.id, int) and pub.id > 0, f"bad publication {pub!r}")
    ev_args, ev_kwargs, details = await rt(qa.get(), "EVENT (publish with acknowledge)")
    check(ev_args == ECHO_ARGS, f"event args {ev_args!r} != {ECHO_ARGS!r}")
    check(ev_kwargs == ECHO_KWARGS, f"event kwargs {ev_kwargs!r} != {ECHO_KWARGS!r}")
    check(details is not None and details.publication == pub.id,
          f"event publication id {getattr(details, 'publication', None)!r} != PUBLISHED id {pub.id}")
    ok("publish_ack")

    step("publisher_exclusion")
    await no_event(qb, "publisher received its own event")
    ok("publisher_exclusion")

    step("unsubscribe")
    await rt(sub_a.unsubscribe(), "UNSUBSCRIBED A")
    check(not sub_a.active, "subscription still active after unsubscribe")
    pub = await rt(b.publish(TOPIC, "after-unsubscribe", options=PublishOptions(acknowledge=True)), "PUBLISHED after unsubscribe")
    check(pub is not None and pub.id > 0, f"bad publication {pub!r}")
    await no_event(qa, "event after unsubscribe")
    ok("unsubscribe")

    step("unregister")
    await rt(reg_add.unregister(), "UNREGISTERED add")
    check(not reg_add.active, "registration still active after unregister")
    await expect_app_error(b.call(PROC_ADD, 1, 2), "wamp.error.no_such_procedure")
    # the other registrations are untouched
    res = await rt(b.call(PROC_ECHO, "still-there"), "RESULT echo after unregister")
    check(res == "still-there", f"echo after unregister of add returned {res!r}")
    ok("unregister")

    step("shared_registration")
    # Both sessions register the same procedure with invoke='roundrobin': one registration,
    # and calls reach both callees (with two shards they sit on different shards).
    reg_sa = await rt(a.register(lambda: "A", PROC_SHARED, options=RegisterOptions(invoke="roundrobin")),
                      "REGISTERED shared (A)")
    reg_sb = await rt(b.register(lambda: "B", PROC_SHARED, options=RegisterOptions(invoke="roundrobin")),
                      "REGISTERED shared (B)")
    check(reg_sa.id == reg_sb.id, f"shared registration ids differ: {reg_sa.id} != {reg_sb.id}")
    served = [await rt(b.call(PROC_SHARED), f"RESULT shared #{i}") for i in range(6)]
    check(set(served) == {"A", "B"}, f"roundrobin calls served by {served!r}, want both A and B")
    await expect_app_error(a.register(lambda: "x", PROC_SHARED, options=RegisterOptions(invoke="last")),
                           "wamp.error.procedure_already_exists")
    await rt(reg_sa.unregister(), "UNREGISTERED shared (A)")
    served = [await rt(b.call(PROC_SHARED), f"RESULT shared after A left #{i}") for i in range(2)]
    check(served == ["B", "B"], f"after A unregistered, calls served by {served!r}")
    await rt(reg_sb.unregister(), "UNREGISTERED shared (B)")
    await expect_app_error(b.call(PROC_SHARED), "wamp.error.no_such_procedure")
    ok("shared_registration")

    # ------------------------------------------------------------- GOODBYE
    step("goodbye")
    await rt(sub_b.unsubscribe(), "UNSUBSCRIBED B")
    for s in (a, b):
        s.leave()
    for s in (a, b):
        details = await rt(asyncio.shield(s.left), f"GOODBYE reply to session {s.name}")
        check(details.reason in ("wamp.close.goodbye_and_out", "wamp.close.normal"),
              f"session {s.name} left with reason {details.reason!r} ({details.message!r})")
        await rt(asyncio.shield(s.disconnected), f"transport close of session {s.name} after GOODBYE")
    ok("goodbye")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--serializer", choices=["json", "msgpack"], default="json")
    p.add_argument("--realm", default="realm1")
    p.add_argument("--subscription-limit", type=int, default=0,
                   help="the router's limits.max_subscriptions_per_session, to test it (0: skip)")
    args = p.parse_args()

    def on_alarm(*_):
        print(f"FAIL {_current_step}: hard kill timeout ({KILL_TIMEOUT_S}s)", flush=True)
        os._exit(3)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(KILL_TIMEOUT_S)

    print(f"info autobahn-python url={args.url} serializer={args.serializer} realm={args.realm}", flush=True)
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
