"""Bounded decoding of response bodies, one path for every Content-Encoding.

A status document is small, but a hostile or careless server can send a 1.6 KB brotli body that
inflates to a gigabyte. Decoding it in full (as mitmproxy's `get_content` does, which also keeps
the result in its decode cache) blocks the event loop every client shares. Here every encoding goes
through a streaming decoder that stops once the excerpt is full, so the work per body is bounded
whatever its compression ratio. The live adapter (mitm/flows.py) and the recording readers
(sources/base.py) both use it.
"""

from __future__ import annotations

import zlib

import brotli
import zstandard

from pollwatch.core.observation import BODY_EXCERPT_LIMIT

COMPRESSED_BODY_LIMIT = 256 * 1024
"""br bodies larger than this are not decoded: brotli is fed a byte at a time (the only way to
bound its output, below), and status documents are small."""
ZSTD_WINDOW_LIMIT = 1 << 23
"""A zstd frame may ask for a window of gigabytes, allocated before any output: 8 MiB is what
level 19 uses, far more than a status document needs."""

Excerpt = tuple[bytes, bool]
"""At most `limit` decoded bytes, and whether the body went on past them."""


def decode_excerpt(raw: bytes, coding: str, limit: int = BODY_EXCERPT_LIMIT) -> Excerpt | None:
    """`raw` decoded per `coding` (a Content-Encoding value), never producing much more than
    `limit` bytes; None when it is not a stream in that coding (or the coding is unknown)."""
    coding = coding.strip().lower()
    if coding in ("", "identity"):
        return _cut(raw, limit)
    if coding in ("gzip", "x-gzip"):
        return _inflate(raw, 16 + zlib.MAX_WBITS, limit)
    if coding == "deflate":  # sometimes sent without the zlib header
        return _inflate(raw, zlib.MAX_WBITS, limit) or _inflate(raw, -zlib.MAX_WBITS, limit)
    if coding == "br":
        return _unbrotli(raw, limit) if len(raw) <= COMPRESSED_BODY_LIMIT else (b"", True)
    if coding == "zstd":
        return _unzstd(raw, limit)
    return None


def _cut(content: bytes, limit: int) -> Excerpt:
    return (content[:limit], True) if len(content) > limit else (content, False)


def _inflate(raw: bytes, wbits: int, limit: int) -> Excerpt | None:
    """zlib stops by itself at `max_length`."""
    try:
        inflater = zlib.decompressobj(wbits)
        content = inflater.decompress(raw, limit + 1)
    except zlib.error:
        return None
    if len(content) > limit:
        return content[:limit], True
    return (content, False) if inflater.eof and not inflater.unused_data else None


def _unbrotli(raw: bytes, limit: int) -> Excerpt | None:
    """brotli (1.1) cannot bound its output per call: fed one byte at a time, one call yields at
    most a meta-block or two (16 MiB each at worst), and decoding stops once the excerpt is full."""
    decompressor = brotli.Decompressor()
    content = bytearray()
    try:
        for start in range(len(raw)):
            content += decompressor.process(raw[start:start + 1])
            if len(content) > limit:
                return bytes(content[:limit]), True
    except brotli.error:
        return None
    return (bytes(content), False) if decompressor.is_finished() else None


def _unzstd(raw: bytes, limit: int) -> Excerpt | None:
    """zstandard's stream reader produces only what is asked of it; the window is capped too."""
    try:
        reader = zstandard.ZstdDecompressor(max_window_size=ZSTD_WINDOW_LIMIT).stream_reader(raw)
        content = bytearray()
        while len(content) <= limit and (chunk := reader.read(limit + 1 - len(content))):
            content += chunk
    except zstandard.ZstdError:
        return None
    return _cut(bytes(content), limit)
