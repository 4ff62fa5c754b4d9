"""Payload parsers: bytes in, `Record`s and per-record `RecordError`s out, knowing nothing of sources or schemas."""
