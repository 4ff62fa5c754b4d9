"""`{{ instance.value|value_text }}`: alert values on the pages as notifications write them."""

from __future__ import annotations

from django import template

from apps.alerts.alerting.templating import value_text as _value_text

register = template.Library()


@register.filter
def value_text(value: float | None) -> str:
    return _value_text(value)
