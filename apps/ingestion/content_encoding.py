"""Compressed bodies and payloads, decoded completely or refused whole.

A gzip body is read to the end of its last member: several concatenated members (valid per RFC 1952, what
`cat a.gz b.gz` and some agents' batching produce) are all read, and a stream that stops inside a member, bytes
after the last member that are not another member, or a damaged header are refused with the reason. Never a
prefix: a truncated body would otherwise store its cut-off last line with a wrong value or time.
"""

from __future__ import annotations

import zlib

from apps.ingestion.records import PayloadError

GZIP_MAGIC = b"\x1f\x8b"
GZIP_ENCODINGS = frozenset({"gzip", "x-gzip"})  # RFC 9110: x-gzip is gzip
IDENTITY_ENCODINGS = frozenset({"", "identity"})


class BodyRefused(PayloadError):
    """A body that cannot be decoded as declared; `status` is the HTTP status that says why (400, 413 or 415)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code, message)
        self.status = status


def content_decode(body: bytes, *, encoding: str, limit: int) -> bytes:
    """The body decoded per its Content-Encoding, at most `limit` bytes once decoded; BodyRefused otherwise."""
    encoding = encoding.strip().lower()
    if encoding in IDENTITY_ENCODINGS:
        return body
    if encoding in GZIP_ENCODINGS:
        return gzip_decode(body, limit=limit)
    raise BodyRefused(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported; use gzip or none.")


def gzip_decode(body: bytes, *, limit: int) -> bytes:
    """Every member of a gzip stream, or BodyRefused: truncated, damaged, trailing bytes, or over `limit` decoded."""
    if not body:
        raise BodyRefused(400, "invalid_gzip", "The body is empty but declared as gzip; send a gzip stream or no body.")
    parts: list[bytes] = []
    total = 0
    rest = body
    member = 1
    while True:
        inflater = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer (CRC-32 and length) are required
        try:
            part = inflater.decompress(rest, limit + 1 - total)
        except zlib.error as error:
            raise BodyRefused(
                400, "invalid_gzip", f"The gzip body could not be decompressed (member {member}): {error}."
            ) from None
        total += len(part)
        if total > limit or inflater.unconsumed_tail:
            raise BodyRefused(
                413, "too_large", f"The decompressed body is over the {limit}-byte limit. Send smaller batches."
            )
        if not inflater.eof:
            raise BodyRefused(
                400,
                "invalid_gzip",
                f"The gzip body is truncated: it ends inside member {member} (no end-of-stream and checksum). "
                "Nothing was stored; send the whole body again.",
            )
        parts.append(part)
        rest = inflater.unused_data
        if not rest:
            return b"".join(parts)
        if not rest.startswith(GZIP_MAGIC):
            raise BodyRefused(
                400,
                "invalid_gzip",
                f"{len(rest)} byte(s) after the end of the gzip stream are not another gzip member. "
                "Nothing was stored; send only gzip data.",
            )
        member += 1


def payload_decode(payload: bytes, *, limit: int) -> bytes:
    """A connector payload: gzip (recognised by its magic bytes) decoded completely, anything else as it is.

    JSON and line protocol never start with the gzip magic (0x1f is a control character), so a message that does
    is compressed. A payload that cannot be decoded raises BodyRefused, a PayloadError: dead-lettered whole.
    """
    if payload.startswith(GZIP_MAGIC):
        return gzip_decode(payload, limit=limit)
    return payload
