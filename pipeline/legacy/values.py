"""Reading the JSON values of a legacy body: their type as an error names it, base64 JSON.

Shared by the request (story.slug_info) and its storage_info, so both refuse a value in the
same words.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import orjson

from pipeline.errors import InvalidRequest

MAX_B64 = 64 * 1024  # storage_info / slug_info: events stay small
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def json_type(value: object) -> str:
    """What a refused value is, in JSON's words ("a string", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def b64_json(value: object, name: str) -> Any:
    """The JSON inside field ``name``'s base64 (standard or URL-safe, wrapped, padded or
    not, with or without a UTF-8 BOM: what the callers' encoders write)."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a base64 string, not {json_type(value)}", field=name)
    if len(value) > MAX_B64:
        raise InvalidRequest(f"{name} is larger than {MAX_B64} characters", field=name)
    text = "".join(value.split())  # encoders that wrap lines
    text += "=" * (-len(text) % 4)
    try:
        altchars = b"-_" if ("-" in text or "_" in text) else None
        raw = base64.b64decode(text, altchars=altchars, validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as e:
        raise InvalidRequest(f"{name} is not valid base64", field=name) from e
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"{name} is not base64 of JSON: {e}", field=name) from e
