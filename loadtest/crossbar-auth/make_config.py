"""Writes config.json and bench-cryptosign.key beside this script: a Crossbar.io node whose
realm1 accepts anonymous, ticket, wampcra (plain and salted), cryptosign and scram (argon2id-13
and pbkdf2) with static principals, on ws://127.0.0.1:23580/ws and rs://127.0.0.1:23581, for
benchmarking wampring-load's authenticated sessions against a secured Crossbar.io. The secrets
are fixed benchmark values, not secrets: never reuse this config for anything else.

Run with the Python of a Crossbar.io venv (it needs Autobahn and PyNaCl):
    /tmp/cbvenv/bin/python loadtest/crossbar-auth/make_config.py
"""
import os
HERE = os.path.dirname(os.path.abspath(__file__))
import json, hashlib, hmac, base64, copy
from autobahn.wamp.auth import derive_scram_credential
import nacl.signing
seed = hashlib.sha256(b"wampring-load crossbar-auth benchmark key").digest()
pub = nacl.signing.SigningKey(seed).verify_key.encode().hex()
open(os.path.join(HERE, "bench-cryptosign.key"), "w").write(seed.hex()+"\n")
argon = derive_scram_credential("bench-scram", "bench-scram-password")
# pbkdf2 principal: SaltedPassword over the raw salt bytes, as wampring::credentials does
salt = hashlib.sha256(b"bench-scram-pbkdf2").digest()[:16]
salted = hashlib.pbkdf2_hmac("sha256", b"bench-scram-password", salt, 4096, 32)
ck = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
pb = {"kdf": "pbkdf2", "iterations": 4096, "memory": 0, "salt": salt.hex(),
      "stored-key": hashlib.sha256(ck).hexdigest(),
      "server-key": hmac.new(salted, b"Server Key", hashlib.sha256).hexdigest(), "role": "user"}
argon = {k: argon[k] for k in ("kdf", "iterations", "memory", "salt", "stored-key", "server-key")}
argon["role"] = "user"
auth = {
  "anonymous": {"type": "static", "role": "anonymous"},
  "ticket": {"type": "static", "principals": {"bench-ticket": {"ticket": "bench-ticket-secret", "role": "user"}}},
  "wampcra": {"type": "static", "users": {
      "bench-cra": {"secret": "bench-cra-secret", "role": "user"},
      "bench-cra-salted": {"secret": "bench-cra-secret", "role": "user", "salt": "bench-salt", "iterations": 1000, "keylen": 32}}},
  "cryptosign": {"type": "static", "principals": {"bench-cryptosign": {"realm": "realm1", "role": "user", "authorized_keys": [pub]}}},
  "scram": {"type": "static", "principals": {"bench-scram": argon, "bench-scram-pbkdf2": pb}},
}
perm = [{"uri": "", "match": "prefix", "allow": {"call": True, "register": True, "publish": True, "subscribe": True},
         "disclose": {"caller": False, "publisher": False}, "cache": True}]
cfg = {"version": 2,
 "controller": {"options": {"title": "secured crossbar for wampring-load authentication benchmarks (loadtest/crossbar-auth)"}},
 "workers": [{"type": "router",
   "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": perm}, {"name": "user", "permissions": copy.deepcopy(perm)}]}],
   "transports": [
     {"type": "web", "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": 23580},
      "paths": {"/": {"type": "static", "directory": ".", "options": {"enable_directory_listing": False}},
                "ws": {"type": "websocket", "serializers": ["json", "msgpack"],
                       "options": {"max_message_size": 16777216, "max_frame_size": 16777216}, "auth": copy.deepcopy(auth)}}},
     {"type": "rawsocket", "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": 23581},
      "options": {"max_message_size": 16777216}, "serializers": ["json", "msgpack"], "auth": copy.deepcopy(auth)}]}]}
json.dump(cfg, open(os.path.join(HERE, "config.json"), "w"), indent=4)
open(os.path.join(HERE, "config.json"), "a").write("\n")
print(pub)
