# Shared helpers for the hostile-client measurements in this folder (not a measurement itself).
#
# Provides: writing a router config (the built-in default with listeners moved to chosen
# ports plus optional [limits]/[router] overrides), starting /tmp/wampring_hostile with its
# stderr captured to a file, counting log lines/bytes, reading VmRSS, stopping the router by
# PID (SIGTERM, wait, SIGKILL fallback), and a minimal RawSocket WAMP client (JSON or
# MsgPack). Imported by the flood/churn/greedy/realms scripts; run them with
#   /work/main/tests/interop/.venv/bin/python <script>.py ...
import collections
import json
import os
import select
import signal
import socket
import struct
import subprocess
import time

import msgpack

BIN = os.environ.get("WAMPRING_BIN", "/tmp/wampring_hostile")
HOST = "127.0.0.1"
WS_PORT = int(os.environ.get("HOSTILE_WS_PORT", "18080"))
RS_PORT = int(os.environ.get("HOSTILE_RS_PORT", "18081"))
OUT = os.environ.get("HOSTILE_OUT", "/tmp/hostile_run")

SER_JSON = 1
SER_MSGPACK = 2


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def write_config(path, cores=None, limits=None, router=None):
    """The default config (see --print-default-config) with listeners on our ports."""
    lines = []
    if cores is not None:
        lines.append(f"cores = {cores}")
    lines += [
        "[[listener]]",
        'kind = "websocket"',
        f'bind = "{HOST}:{WS_PORT}"',
        'path = "/ws"',
        'serializers = ["json", "msgpack"]',
        "",
        "[[listener]]",
        'kind = "rawsocket"',
        f'bind = "{HOST}:{RS_PORT}"',
        'serializers = ["json", "msgpack"]',
        "max_message_size = 16777216",
        "",
    ]
    if limits:
        lines.append("[limits]")
        for k, v in limits.items():
            lines.append(f"{k} = {json.dumps(v)}")
        lines.append("")
    if router:
        lines.append("[router]")
        for k, v in router.items():
            lines.append(f"{k} = {json.dumps(v)}")
        lines.append("")
    lines += ["[[realm]]", 'name = "realm1"', ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


class Router:
    def __init__(self, config, tag, extra_args=()):
        os.makedirs(OUT, exist_ok=True)
        for p in (WS_PORT, RS_PORT):
            if not port_free(p):
                raise SystemExit(f"port {p} is busy")
        self.log_path = os.path.join(OUT, f"{tag}.stderr")
        self.cmd = [BIN, "--config", config, *extra_args]
        env = dict(os.environ)
        env.pop("RUST_LOG", None)  # default level (info)
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=self.logf, env=env)
        self.pid = self.proc.pid
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"router exited: {open(self.log_path).read()}")
            try:
                socket.create_connection((HOST, RS_PORT), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.5)  # every shard listening

    def log_stats(self):
        self.logf.flush()
        with open(self.log_path, "rb") as f:
            data = f.read()
        return data.count(b"\n"), len(data)

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def frame(payload, kind=0):
    n = len(payload)
    return bytes([kind, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF]) + payload


class Client:
    """Minimal RawSocket WAMP client."""

    def __init__(self, ser=SER_MSGPACK, timeout=5.0):
        self.ser = ser
        self.sock = socket.create_connection((HOST, RS_PORT), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(bytes([0x7F, 0xF0 | ser, 0, 0]))
        hs = self._recv_exact(4)
        if hs[0] != 0x7F or (hs[1] & 0x0F) != ser:
            raise IOError(f"handshake refused: {hs.hex()}")
        self.buf = bytearray()
        self.pending = collections.deque()

    def _recv_exact(self, n):
        b = b""
        while len(b) < n:
            c = self.sock.recv(n - len(b))
            if not c:
                raise EOFError("closed")
            b += c
        return b

    def encode(self, msg):
        if self.ser == SER_JSON:
            return frame(json.dumps(msg).encode())
        return frame(msgpack.packb(msg))

    def decode(self, payload):
        if self.ser == SER_JSON:
            return json.loads(payload)
        return msgpack.unpackb(payload, strict_map_key=False)

    def send(self, msg):
        self.sock.sendall(self.encode(msg))

    def frames(self):
        """Parse complete frames out of self.buf; answer pings. Yields payloads."""
        buf = self.buf
        off = 0
        out = []
        while len(buf) - off >= 4:
            kind = buf[off]
            n = (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]
            if len(buf) - off - 4 < n:
                break
            payload = bytes(buf[off + 4: off + 4 + n])
            off += 4 + n
            if kind == 1:
                self.sock.sendall(frame(payload, 2))
            elif kind == 0:
                out.append(payload)
        del buf[:off]
        return out

    def recv(self):
        while True:
            if self.pending:
                return self.decode(self.pending.popleft())
            self.pending.extend(self.frames())
            if self.pending:
                continue
            c = self.sock.recv(1 << 16)
            if not c:
                raise EOFError("closed")
            self.buf += c

    def hello(self, realm="realm1"):
        self.send([1, realm, {"roles": {"publisher": {}, "subscriber": {}, "caller": {}, "callee": {}}}])
        return self.recv()

    def goodbye(self):
        self.send([6, {}, "wamp.close.close_realm"])
        try:
            while True:
                m = self.recv()
                if m[0] == 6:
                    return m
        except (EOFError, OSError):
            return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
