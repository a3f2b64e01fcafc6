"""A small CBOR codec (RFC 8949) for the Defender topics' ``cbor`` format: what JSON can
hold (maps, arrays, text, integers, floats, true/false/null) plus byte strings, tags
(read, value kept) and indefinite lengths. Hostile input cannot make it loop, recurse
or allocate beyond the payload's size: every declared length is checked against the
bytes left, and nesting is capped.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Tuple

MAX_DEPTH = 32
_BREAK = object()


class CborError(ValueError):
    pass


def loads(data: bytes) -> Any:
    value, end = _item(memoryview(bytes(data)), 0, 0)
    if value is _BREAK:
        raise CborError("unexpected break")
    if end != len(data):
        raise CborError(f"{len(data) - end} bytes after the first item")
    return value


def _need(data, at: int, count: int) -> None:
    if count < 0 or at + count > len(data):
        raise CborError("truncated")


def _argument(data, at: int, info: int) -> Tuple[int, int]:
    if info < 24:
        return info, at
    sizes = {24: 1, 25: 2, 26: 4, 27: 8}
    if info not in sizes:
        raise CborError(f"reserved additional information {info}")
    size = sizes[info]
    _need(data, at, size)
    return int.from_bytes(data[at:at + size], "big"), at + size


def _item(data, at: int, depth: int) -> Tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise CborError("nested too deeply")
    _need(data, at, 1)
    major, info = data[at] >> 5, data[at] & 31
    at += 1
    if info == 31:
        return _indefinite(data, at, major, depth)
    if major == 7:
        return _simple(data, at, info)
    value, at = _argument(data, at, info)
    if major == 0:
        return value, at
    if major == 1:
        return -1 - value, at
    if major in (2, 3):
        _need(data, at, value)
        raw = bytes(data[at:at + value])
        return (raw if major == 2 else _text(raw)), at + value
    if major == 4:
        _need(data, at, value)          # each element takes at least one byte
        items = []
        for _ in range(value):
            item, at = _item(data, at, depth + 1)
            if item is _BREAK:
                raise CborError("unexpected break")
            items.append(item)
        return items, at
    if major == 5:
        _need(data, at, 2 * value)
        result = {}
        for _ in range(value):
            key, at = _item(data, at, depth + 1)
            item, at = _item(data, at, depth + 1)
            if key is _BREAK or item is _BREAK:
                raise CborError("unexpected break")
            result[_key(key)] = item
        return result, at
    # major 6: a tag; keep the tagged value
    return _item(data, at, depth + 1)


def _key(key):
    if isinstance(key, (list, dict)):
        raise CborError("a map key must be a string or a number")
    return key


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CborError("a text string is not UTF-8") from None


def _simple(data, at: int, info: int) -> Tuple[Any, int]:
    if info == 20:
        return False, at
    if info == 21:
        return True, at
    if info in (22, 23):
        return None, at
    formats = {25: (">e", 2), 26: (">f", 4), 27: (">d", 8)}
    if info in formats:
        fmt, size = formats[info]
        _need(data, at, size)
        return struct.unpack(fmt, data[at:at + size])[0], at + size
    raise CborError(f"unsupported simple value {info}")


def _indefinite(data, at: int, major: int, depth: int) -> Tuple[Any, int]:
    if major == 7:
        return _BREAK, at
    if major not in (2, 3, 4, 5):
        raise CborError(f"major type {major} cannot have an indefinite length")
    items = []
    while True:
        item, at = _item(data, at, depth + 1)
        if item is _BREAK:
            break
        items.append(item)
    if major in (2, 3):
        kind = bytes if major == 2 else str
        if not all(isinstance(chunk, kind) for chunk in items):
            raise CborError("an indefinite string holds a chunk of another type")
        return (b"" if major == 2 else "").join(items), at
    if major == 4:
        return items, at
    if len(items) % 2:
        raise CborError("a map ends after a key")
    return {_key(items[i]): items[i + 1] for i in range(0, len(items), 2)}, at


def dumps(value: Any) -> bytes:
    out = bytearray()
    _encode(value, out)
    return bytes(out)


def _head(major: int, value: int, out: bytearray) -> None:
    if value < 24:
        out.append(major << 5 | value)
    else:
        for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if value < 1 << (8 * size):
                out.append(major << 5 | info)
                out += value.to_bytes(size, "big")
                return
        raise CborError("integer too large")


def _encode(value: Any, out: bytearray) -> None:
    if value is False or value is True:
        out.append(0xF5 if value else 0xF4)
    elif value is None:
        out.append(0xF6)
    elif isinstance(value, int):
        _head(0, value, out) if value >= 0 else _head(1, -1 - value, out)
    elif isinstance(value, float):
        if math.isnan(value):
            out += b"\xf9\x7e\x00"
        else:
            out.append(0xFB)
            out += struct.pack(">d", value)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        _head(3, len(raw), out)
        out += raw
    elif isinstance(value, (bytes, bytearray)):
        _head(2, len(value), out)
        out += value
    elif isinstance(value, (list, tuple)):
        _head(4, len(value), out)
        for item in value:
            _encode(item, out)
    elif isinstance(value, dict):
        _head(5, len(value), out)
        for key, item in value.items():
            _encode(key, out)
            _encode(item, out)
    else:
        raise CborError(f"cannot encode {type(value).__name__}")
