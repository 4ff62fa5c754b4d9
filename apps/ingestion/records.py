"""What every parser produces and every validator consumes: records before a schema, and errors with a place.

Parsers (JSON, NDJSON, line protocol, CSV, Parquet) turn a payload into `Record`s and `RecordError`s; they know
nothing about sources. Schema validation (`apps.ingestion.validation`) turns records into points or more errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RAW_PAYLOAD_MAX_CHARS = 65_536  # a dead letter keeps at most this much of one record's raw text


@dataclass(slots=True)
class Record:
    """One input record: a JSON object, a CSV row, or one line-protocol line.

    `fields` holds every key/value of a JSON object or CSV row, or a line's fields. Line protocol also fills
    `measurement`, `tags` and `time_ns` (the timestamp scaled to nanoseconds by the precision; None if absent).
    `raw` is the record's text as received when the parser has it cheaply (a line); otherwise the validator
    serialises `fields` for the dead-letter store.
    """

    index: int
    fields: dict[str, object]
    tags: dict[str, str] | None = None
    measurement: str | None = None
    time_ns: int | None = None
    raw: str | None = None


@dataclass(slots=True)
class RecordError:
    """Why one record was refused: a stable machine code, the field at fault (if any) and a sentence for people."""

    index: int
    code: str
    message: str
    field: str | None = None
    raw: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"index": self.index, "code": self.code, "field": self.field, "message": self.message}


@dataclass(slots=True)
class ParseResult:
    """Records that parsed and errors for those that did not, each error carrying the record's raw text.

    Line protocol also reports each measurement's field types as the body's first line of them gave them
    (`field_kinds`: measurement -> field -> float, integer, unsigned, boolean or string) and how many fields
    named `time` it dropped.
    """

    records: list[Record] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    field_kinds: dict[str, dict[str, str]] = field(default_factory=dict)
    dropped_time_fields: int = 0


class PayloadError(ValueError):
    """The payload as a whole is unusable (bad encoding, not JSON at all); answered with 400 and dead-lettered whole."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def raw_truncate(text: str) -> str:
    """Cap a raw record for the dead-letter store, saying how much was cut."""
    if len(text) <= RAW_PAYLOAD_MAX_CHARS:
        return text
    cut = len(text) - RAW_PAYLOAD_MAX_CHARS
    return f"{text[:RAW_PAYLOAD_MAX_CHARS]}… [{cut} more characters not kept]"


def payload_text(body: bytes | str) -> str:
    """The body as text: UTF-8 strictly, without a leading byte-order mark; PayloadError names the bad byte."""
    if isinstance(body, str):
        text = body
    else:
        try:
            text = str(body, "utf-8")
        except UnicodeDecodeError as error:
            raise PayloadError(
                "invalid_encoding", f"the body is not valid UTF-8 (byte {error.start}: {error.reason})."
            ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text
