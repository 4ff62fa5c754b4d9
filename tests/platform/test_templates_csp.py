"""The Content Security Policy forbids inline scripts and handlers: no template may carry one (it would be blocked
in the browser and the control would silently do nothing)."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
# A script with the request's CSP nonce is allowed; any other inline script is not.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\b(?:src|nonce)=)[^>]*>\s*\S", re.IGNORECASE)


def test_no_template_has_an_inline_handler_script_or_javascript_url():
    offenders = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text()
        for pattern in (INLINE_HANDLER, INLINE_SCRIPT, re.compile(r"javascript:", re.IGNORECASE)):
            offenders += [f"{path.relative_to(TEMPLATES)}: {match.group(0)[:80]}" for match in pattern.finditer(text)]
    assert offenders == []


def test_the_check_finds_an_inline_handler():
    assert INLINE_HANDLER.search('<input id="k" onfocus="this.select()">')
    assert INLINE_SCRIPT.search("<script>alert(1)</script>")
    assert not INLINE_SCRIPT.search('<script type="module" src="/static/x.js"></script>')
    assert not INLINE_SCRIPT.search('<script nonce="{{ request.csp_nonce }}">Redoc.init()</script>')
