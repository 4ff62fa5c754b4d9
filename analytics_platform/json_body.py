"""Request bodies held to their documented JSON types.

DRF's fields were made for HTML forms too, where every value arrives as text, so they convert: a CharField takes
the number 0 as "0", an IntegerField takes "5", a BooleanField takes 1, "yes" or "on". The API reads JSON only,
and its schema says which fields are text, numbers or booleans; a body that sends another type is refused with
400 naming the field, as the schema promises, instead of being reinterpreted. Text is measured as sent (DRF
measures it after trimming its whitespace).
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

_MESSAGES = {
    str: "must be text.",
    int: "must be a whole number.",
    float: "must be a number.",
    bool: "must be true or false.",
}


def _expected_type(field: serializers.Field) -> type | None:
    """The JSON type a field's value must have, or None when the field checks its own."""
    if isinstance(field, serializers.BooleanField):
        return bool
    if isinstance(field, serializers.IntegerField):
        return int
    if isinstance(field, serializers.FloatField | serializers.DecimalField):
        return float
    if isinstance(field, serializers.CharField | serializers.DateTimeField | serializers.DateField):
        return str
    if isinstance(field, serializers.ChoiceField) and all(isinstance(key, str) for key in field.choices):
        return str
    return None


def _type_error(field: serializers.Field, value: Any) -> str | None:
    """Why `value` is not of the field's JSON type, or None when it is (or the field checks for itself)."""
    if value is None:
        return None  # the field's own allow_null decides
    if isinstance(field, serializers.ListField) and isinstance(value, list):
        for item in value:
            error = _type_error(field.child, item)
            if error is not None:
                return f"every item {error}"
        return None
    expected = _expected_type(field)
    if expected is None:
        return None
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        return _MESSAGES[expected]
    # DRF measures text after trimming its whitespace; the schema's maxLength counts what was sent.
    maximum = getattr(field, "max_length", None)
    if isinstance(value, str) and maximum is not None and len(value) > maximum:
        return f"at most {maximum} characters."
    return None


class JsonBodySerializer(serializers.Serializer):
    """A request body's serializer that refuses values not of their field's JSON type (see the module docstring)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            errors = {}
            for name, field in self.fields.items():
                if field.read_only or name not in data:
                    continue
                error = _type_error(field, data[name])
                if error is not None:
                    errors[name] = [serializers.ErrorDetail(error, code="invalid")]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)
