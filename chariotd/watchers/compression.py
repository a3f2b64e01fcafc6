"""Payload compression named by a message's `compress` key (pure).

    gzip     RFC 1952 (what `gunzip` reads); the header's mtime is 0, so equal
             payloads compress to equal bytes
    deflate  RFC 1950, the zlib stream (what HTTP and Node's deflateSync call deflate)
"""

from __future__ import annotations

import gzip
import json
import zlib

LEVEL = 6  # zlib's own default: most of the gain for a fraction of level 9's time

METHODS = ("gzip", "deflate")


class UnknownCompression(ValueError):
    pass


def compress(payload: bytes, method: object) -> bytes:
    """PAYLOAD compressed by METHOD, or UnknownCompression when METHOD is none of ours."""
    if method == "gzip":
        return gzip.compress(payload, compresslevel=LEVEL, mtime=0)
    if method == "deflate":
        return zlib.compress(payload, LEVEL)
    try:
        shown = json.dumps(method, ensure_ascii=False)
    except (RecursionError, ValueError):  # hostile nesting, or a huge integer
        shown = f"a nested {type(method).__name__}"
    if len(shown) > 40:
        shown = shown[:37] + "..."
    raise UnknownCompression(f"compress {shown} is not one of {', '.join(METHODS)}; "
                             "published uncompressed")
