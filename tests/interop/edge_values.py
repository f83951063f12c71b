# Payload values that exercise the serializers' edge cases, and a strict comparison.
#
# Owned by the interop test harness (tests/interop/**, tests/interop.rs). Shared by the Python
# clients (client.py, mixed.py, xconn_client.py): EDGE_ARGS / EDGE_KWARGS hold binary values
# (bytes: JSON carries them as "\0" + base64, MessagePack as bin, CBOR as a byte string, so a
# router that transcodes between serializers must convert them), integers at the encodings'
# length boundaries and beyond 2^53 (up to 2^64 - 1 and down to -2^63), floats (tiny, huge,
# negative zero, an integral float that must stay a float), unicode outside the BMP, empty
# strings / lists / dicts / bytes and nested structures. `same` compares them strictly (an int is
# not a float nor a bool, bytes are not str, -0.0 is not 0.0) and `first_difference` says where
# two values differ, for the failure message.

import math

# CBOR's argument length boundaries (23/24, 255/256, 65535/65536, 2^32 - 1 / 2^32) on both sides
# of zero, JavaScript's safe-integer edge 2^53, and the 64-bit extremes every serializer here
# can carry (MessagePack: uint64 / int64; CBOR: major type 0 / 1; JSON: plain digits).
EDGE_INTS = [
    0, 1, -1, 23, 24, -24, -25, 255, 256, -256, -257, 65535, 65536, -65536, -65537,
    2**32 - 1, 2**32, -(2**32), -(2**32) - 1,
    2**53, 2**53 + 1, -(2**53), -(2**53) - 1,
    2**63 - 1, 2**63, 2**64 - 1, -(2**63),
]

EDGE_FLOATS = [0.1, -2.5, 1.0, -0.0, 1e308, -1e-308, 5e-324, 3.141592653589793, 65504.0, 1.5e-5]

EDGE_BYTES = [b"", b"\x00", b"\x00\x01\x02\xfd\xfe\xff", bytes(range(256)) * 2, b"\xff" * 70_000]

EDGE_STRINGS = ["", "ünïcødé ✓", "𝄞 😀 中文 עברית", "a\x00b", "\\\"'\n\t", "x" * 300]

EDGE_ARGS = (
    EDGE_INTS
    + EDGE_FLOATS
    + EDGE_BYTES
    + EDGE_STRINGS
    + [
        None, True, False,
        [], {}, [[]], [{}], {"": ""}, {"e": []},
        {"l": [1, [2, [3, [b"\x07\x08", {"k": [None, True, False, -0.5, 2**60]}]]]]},
        [b"\x01", "\x01", 1, 1.0, True],
    ]
)

EDGE_KWARGS = {
    "bin": b"\xff\x00\x80",
    "empty_bin": b"",
    "u64": 2**64 - 1,
    "i64": -(2**63),
    "past_js": 2**53 + 1,
    "f": 0.1,
    "integral_float": 2.0,
    "empty_s": "",
    "empty_l": [],
    "empty_d": {},
    "ünï": "cødé 😀",
    "": "empty key",
    "nested": {"a": [b"x", {"b": 1.5, "c": [[], {}, ""]}], "d": {"e": {"f": {"g": b"\x00\xff"}}}},
}


def first_difference(got, want, path="$"):
    """None when `got` and `want` are the same value strictly; else where and how they differ."""
    if type(got) is not type(want):
        return f"{path}: {type(got).__name__} {_short(got)} != {type(want).__name__} {_short(want)}"
    if isinstance(want, float):
        if math.isnan(want) and math.isnan(got):
            return None
        if got != want or math.copysign(1.0, got) != math.copysign(1.0, want):
            return f"{path}: {got!r} != {want!r}"
        return None
    if isinstance(want, list):
        if len(got) != len(want):
            return f"{path}: list of {len(got)} != list of {len(want)}: {_short(got)} != {_short(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            d = first_difference(g, w, f"{path}[{i}]")
            if d:
                return d
        return None
    if isinstance(want, dict):
        if set(got) != set(want):
            return f"{path}: keys {sorted(map(repr, got))} != {sorted(map(repr, want))}"
        for k in want:
            d = first_difference(got[k], want[k], f"{path}[{k!r}]")
            if d:
                return d
        return None
    return None if got == want else f"{path}: {_short(got)} != {_short(want)}"


def same(got, want):
    return first_difference(got, want) is None


def _short(v):
    r = repr(v)
    return r if len(r) <= 120 else r[:117] + "..."
