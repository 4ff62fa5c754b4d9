"""Digests of generated secrets (API tokens, source write keys): what the database stores instead of the secret."""

from __future__ import annotations

import hashlib


def key_digest(raw_key: str) -> str:
    """SHA-256 hex digest of a generated key.

    The keys carry 256 bits of randomness, so a fast digest is safe here (unlike passwords), and it keeps
    per-request authentication to one indexed lookup.
    """
    return hashlib.sha256(raw_key.encode()).hexdigest()
