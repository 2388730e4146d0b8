"""The versioned binary codec for every message on the wire.

A frame is two header bytes and a body::

    byte 0  codec version (1)
    byte 1  flags: bits 0-1 body format (0 msgpack, 1 JSON, 2 CBOR), bit 2 zstd-compressed
    body    the message as a map, in that format

Fleetlink sends msgpack, compressed with zstd when the body exceeds
``COMPRESS_ABOVE_BYTES``; the choice and the figures behind it are in
docs/decisions.md and docs/benchmarks.md (``fleetlink bench codec``). The
decoder reads every format, so a device and a cloud of different versions can
still talk.
"""

from __future__ import annotations

import io
import json
import threading
from enum import IntEnum
from typing import Any, TypeVar

import msgpack
import zstandard
from pydantic import BaseModel, ValidationError

CODEC_VERSION = 1
COMPRESS_ABOVE_BYTES = 512
_ZSTD_FLAG = 0b100
_FORMAT_MASK = 0b011
# The largest body a frame may hold, compressed or not. A full batch
# (MAX_SAMPLES_PER_BATCH samples) is well under 1 MiB in msgpack; the cap is enforced while
# decompressing, so a small zstd bomb never allocates more than this.
MAX_BODY_BYTES = 1024 * 1024

M = TypeVar("M", bound=BaseModel)


class CodecError(ValueError):
    """Raised for a payload that cannot be decoded; the message says why."""


class Format(IntEnum):
    MSGPACK = 0
    JSON = 1
    CBOR = 2


def _dumps(obj: dict[str, Any], fmt: Format) -> bytes:
    if fmt is Format.MSGPACK:
        return msgpack.packb(obj, use_bin_type=True)
    if fmt is Format.JSON:
        return json.dumps(obj, separators=(",", ":")).encode()
    import cbor2  # only benchmarks and older peers need CBOR

    return cbor2.dumps(obj)


def _loads(body: bytes, fmt: Format) -> Any:
    if fmt is Format.MSGPACK:
        return msgpack.unpackb(body, raw=False, strict_map_key=True)
    if fmt is Format.JSON:
        return json.loads(body)
    import cbor2

    return cbor2.loads(body)


def encode(
    message: BaseModel,
    fmt: Format = Format.MSGPACK,
    compress_above: int | None = COMPRESS_ABOVE_BYTES,
) -> bytes:
    """Return the framed bytes of ``message``; ``compress_above=None`` never compresses."""
    return encode_body(message.model_dump(mode="json"), fmt, compress_above)


def encode_body(
    body: dict[str, Any],
    fmt: Format = Format.MSGPACK,
    compress_above: int | None = COMPRESS_ABOVE_BYTES,
) -> bytes:
    """Return the framed bytes of a message already in its wire form (a model's
    ``model_dump(mode="json")``), unvalidated, compressed as ``encode`` does."""
    data = _dumps(body, fmt)
    flags = int(fmt)
    if compress_above is not None and len(data) > compress_above:
        data = zstandard.ZstdCompressor(level=3).compress(data)
        flags |= _ZSTD_FLAG
    return bytes((CODEC_VERSION, flags)) + data


def encode_raw(body: dict[str, Any], fmt: Format = Format.MSGPACK, compress: bool = False) -> bytes:
    """Return a frame holding ``body`` as is, unvalidated (for tests and tools that must
    produce what a model would refuse)."""
    return encode_body(body, fmt, 0 if compress else None)


def decode_raw(payload: bytes) -> Any:
    """Return the body of a frame as plain Python data; raise CodecError if it is not one."""
    fmt, body = frame_body(payload)
    try:
        return _loads(body, fmt)
    except Exception as exc:  # every library raises its own type for garbage
        raise CodecError(f"{fmt.name.lower()} body does not decode: {exc}") from exc


def frame_body(payload: bytes) -> tuple[Format, bytes]:
    """Return a frame's body format and its body, decompressed; raise CodecError if the
    header is not one this build reads or the body exceeds ``MAX_BODY_BYTES``."""
    if len(payload) < 3:
        raise CodecError(f"payload of {len(payload)} bytes is too short to be a frame")
    version, flags = payload[0], payload[1]
    if version != CODEC_VERSION:
        raise CodecError(f"unsupported codec version {version} (this build reads {CODEC_VERSION})")
    if flags & ~(_ZSTD_FLAG | _FORMAT_MASK):
        raise CodecError(f"unknown codec flags 0x{flags:02x}")
    try:
        fmt = Format(flags & _FORMAT_MASK)
    except ValueError:
        raise CodecError(f"unknown body format {flags & _FORMAT_MASK}") from None
    body = payload[2:]
    if len(body) > MAX_BODY_BYTES:
        raise CodecError(f"body of {len(body)} bytes exceeds the {MAX_BODY_BYTES}-byte limit")
    if flags & _ZSTD_FLAG:
        body = _decompress(body)
    return fmt, body


_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    """Return this thread's decompressor (one must not be used by two threads at once)."""
    found: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if found is None:
        found = _local.decompressor = zstandard.ZstdDecompressor()
    return found


def _decompress(body: bytes) -> bytes:
    """Return the zstd ``body`` decompressed, reading at most MAX_BODY_BYTES + 1 bytes.

    ``ZstdDecompressor.decompress(max_output_size=…)`` ignores its limit when the frame
    header declares a content size, so the cap is applied by reading a stream instead.
    """
    try:
        declared = zstandard.frame_content_size(body)
    except zstandard.ZstdError as exc:
        raise CodecError(f"zstd body does not decode: {exc}") from exc
    if 0 <= declared <= MAX_BODY_BYTES:
        # The common case, a frame stating its size within the cap: one call on this thread's
        # decompressor (zstd checks the output against the stated size). Creating a
        # decompressor and a stream per message was a visible share of the ingest's profile.
        try:
            return _decompressor().decompress(body)
        except zstandard.ZstdError as exc:
            raise CodecError(f"zstd body does not decode: {exc}") from exc
    out = bytearray()
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body)) as reader:
            while len(out) <= MAX_BODY_BYTES:
                chunk = reader.read(MAX_BODY_BYTES + 1 - len(out))
                if not chunk:
                    break
                out += chunk
    except zstandard.ZstdError as exc:
        raise CodecError(f"zstd body does not decode: {exc}") from exc
    if len(out) > MAX_BODY_BYTES:
        raise CodecError(f"body decompresses to more than {MAX_BODY_BYTES} bytes")
    return bytes(out)


def decode(payload: bytes, model: type[M]) -> M:
    """Return ``payload`` decoded and validated as ``model``; raise CodecError if it is not."""
    data = decode_raw(payload)
    if not isinstance(data, dict):
        raise CodecError(f"body is a {type(data).__name__}, expected a map")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CodecError(f"not a valid {model.__name__}: {exc}") from exc
