"""Subject and message templates: Django's template language over the few plain values a report gives them.

The templates run on an engine of their own (no loaders, no tag libraries to load, no settings in the context),
and only the tags below are accepted, so a template can format what it was given and reach nothing else:
no `{% include %}`, `{% load %}`, `{% debug %}`, `{% url %}` and no objects whose attributes lead elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.template import Context, Engine, TemplateSyntaxError

from analytics_platform.field_errors import FieldError

ALLOWED_TAGS = frozenset(
    {"if", "elif", "else", "endif", "for", "empty", "endfor", "with", "endwith", "firstof", "comment", "endcomment"}
)
# The variables a template may use (all plain strings); the editor lists them.
TEMPLATE_VARIABLES = (
    "report_name",
    "period",
    "period_start",
    "period_end",
    "timezone",
    "generated_at",
    "recipient_name",
    "recipient_email",
    "dashboard_title",
    "organization_name",
)
_TAG = re.compile(r"{%-?\s*(\S+)")
_ENGINE = Engine(dirs=[], app_dirs=False, loaders=[], libraries={}, builtins=None, autoescape=False, debug=False)
SUBJECT_MAX_LENGTH = 250


def template_clean(text: object, *, field: str, maximum: int) -> str:
    """A template that parses and uses only the allowed tags, or a FieldError naming `field`."""
    if not isinstance(text, str):
        raise FieldError(field, "must be text.")
    if len(text) > maximum:
        raise FieldError(field, f"at most {maximum:,} characters.")
    for match in _TAG.finditer(text):
        if match.group(1) not in ALLOWED_TAGS:
            raise FieldError(
                field, f"the tag {match.group(1)[:30]!r} is not allowed; use {{{{ variables }}}}, if, for and with."
            )
    try:
        _ENGINE.from_string(text)
    except TemplateSyntaxError as error:
        raise FieldError(field, f"not a valid template: {error}") from None
    return text


def template_render(text: str, variables: Mapping[str, str]) -> str:
    """Render with exactly the given values (unknown names render empty)."""
    values = {name: str(variables.get(name, "")) for name in TEMPLATE_VARIABLES}
    return _ENGINE.from_string(text).render(Context(values, autoescape=False))


def subject_render(text: str, variables: Mapping[str, str]) -> str:
    """A subject on one line (a header cannot carry line breaks), cut to a sane length."""
    return " ".join(template_render(text, variables).split())[:SUBJECT_MAX_LENGTH]
