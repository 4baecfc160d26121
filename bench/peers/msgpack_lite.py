"""Just enough MessagePack to speak Serf's RPC protocol without a third-party package.

Encodes maps, strings, ints, bytes, lists, bools and None; decodes every MessagePack type
(extension types come back as raw bytes). Decoding pulls bytes from a callable, so one object
can be read off a socket stream at a time.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any


def packb(obj: Any) -> bytes:
    out = bytearray()
    _pack(obj, out)
    return bytes(out)


def _pack(obj: Any, out: bytearray) -> None:
    if obj is None:
        out.append(0xC0)
    elif obj is True:
        out.append(0xC3)
    elif obj is False:
        out.append(0xC2)
    elif isinstance(obj, int):
        if 0 <= obj < 0x80:
            out.append(obj)
        elif -32 <= obj < 0:
            out.append(obj & 0xFF)
        elif 0 <= obj < 2**64:
            out += b"\xcf" + struct.pack(">Q", obj)
        else:
            out += b"\xd3" + struct.pack(">q", obj)
    elif isinstance(obj, str):
        data = obj.encode()
        if len(data) < 32:
            out.append(0xA0 | len(data))
        elif len(data) < 2**16:
            out += b"\xda" + struct.pack(">H", len(data))
        else:
            out += b"\xdb" + struct.pack(">I", len(data))
        out += data
    elif isinstance(obj, bytes | bytearray):
        out += b"\xc6" + struct.pack(">I", len(obj)) + obj
    elif isinstance(obj, list | tuple):
        out += b"\xdd" + struct.pack(">I", len(obj))
        for item in obj:
            _pack(item, out)
    elif isinstance(obj, dict):
        out += b"\xdf" + struct.pack(">I", len(obj))
        for key, value in obj.items():
            _pack(key, out)
            _pack(value, out)
    else:
        raise TypeError(f"cannot pack {type(obj).__name__}")


_FIXED: dict[int, tuple[str, int]] = {
    0xCC: (">B", 1),
    0xCD: (">H", 2),
    0xCE: (">I", 4),
    0xCF: (">Q", 8),
    0xD0: (">b", 1),
    0xD1: (">h", 2),
    0xD2: (">i", 4),
    0xD3: (">q", 8),
    0xCA: (">f", 4),
    0xCB: (">d", 8),
}
_LEN = {1: ">B", 2: ">H", 4: ">I"}


def unpack(read: Callable[[int], bytes]) -> Any:
    """Decode one object, taking exactly the bytes it needs from ``read(n)``."""

    def length(size: int) -> int:
        value: int = struct.unpack(_LEN[size], read(size))[0]
        return value

    def text(n: int) -> str | bytes:
        raw = read(n)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return raw

    tag = read(1)[0]
    if tag < 0x80:
        return tag
    if tag >= 0xE0:
        return tag - 0x100
    if 0xA0 <= tag <= 0xBF:
        return text(tag & 0x1F)
    if 0x90 <= tag <= 0x9F:
        return [unpack(read) for _ in range(tag & 0x0F)]
    if 0x80 <= tag <= 0x8F:
        return {_key(unpack(read)): unpack(read) for _ in range(tag & 0x0F)}
    if tag == 0xC0:
        return None
    if tag in (0xC2, 0xC3):
        return tag == 0xC3
    if tag in _FIXED:
        fmt, size = _FIXED[tag]
        return struct.unpack(fmt, read(size))[0]
    if tag in (0xD9, 0xDA, 0xDB):
        return text(length({0xD9: 1, 0xDA: 2, 0xDB: 4}[tag]))
    if tag in (0xC4, 0xC5, 0xC6):
        return read(length({0xC4: 1, 0xC5: 2, 0xC6: 4}[tag]))
    if tag in (0xDC, 0xDD):
        return [unpack(read) for _ in range(length(2 if tag == 0xDC else 4))]
    if tag in (0xDE, 0xDF):
        return {_key(unpack(read)): unpack(read) for _ in range(length(2 if tag == 0xDE else 4))}
    if tag in (0xD4, 0xD5, 0xD6, 0xD7, 0xD8):
        return read(1 + {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}[tag])
    if tag in (0xC7, 0xC8, 0xC9):
        return read(1 + length({0xC7: 1, 0xC8: 2, 0xC9: 4}[tag]))
    raise ValueError(f"bad MessagePack tag 0x{tag:02x}")


def _key(key: Any) -> Any:
    return key.decode(errors="replace") if isinstance(key, bytes) else key
