"""Text inside JSON documents that PostgreSQL cannot store: jsonb and text refuse the NUL character (\\u0000)."""

from __future__ import annotations

from typing import Any

NUL = "\x00"


def nul_character_path(value: Any, path: str = "") -> str | None:
    """The JSON path (e.g. panels[2].title) of the first key or string holding a NUL character, or None.

    The root itself is named by `path` (or "" when it is the document); keys with NUL are named by their parent.
    """
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and NUL in key:
                return path
            found = nul_character_path(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = nul_character_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
