"""Text PostgreSQL cannot store: the NUL character (\\u0000), and lone surrogates (a JSON "\\ud800" decodes to one,
which is not Unicode text and has no UTF-8 form)."""

from __future__ import annotations

from typing import Any

UNSTORABLE_TEXT_MESSAGE = "text cannot contain NUL (\\u0000) characters or lone surrogates (\\ud800-\\udfff)."


def text_storable(text: str) -> bool:
    """Whether PostgreSQL can hold `text`."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unstorable_text_path(value: Any, path: str = "") -> str | None:
    """The JSON path (e.g. panels[2].title) of the first key or string PostgreSQL cannot store, or None.

    The root itself is named by `path` (or "" when it is the document); a key that cannot be stored is named by its
    parent.
    """
    if isinstance(value, str):
        return None if text_storable(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not text_storable(key):
                return path
            found = unstorable_text_path(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = unstorable_text_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
