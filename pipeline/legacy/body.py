"""The legacy ``POST /export`` body as one typed definition, under the contract's names.

:class:`ExportBody` is what a caller may send (/work/shared/api/export-api.md): every type,
length and range a field must meet is here, and so in the OpenAPI document generated from
it (ingress/openapi.py).  :func:`read_body` applies it and reports a refused field by the
name the caller wrote (``Duration``, ``story.id``), as an InvalidRequest (ErrorCode -2).
Rules a JSON Schema cannot say stay in code and are described here: LivePath's clean-up
(pipeline/legacy/request.py), the base64 JSON inside ``storage_info`` and
``story.slug_info``, a range needing StartPos or StartTime, and the SessionId check (which
runs before this one, so a caller without a session learns nothing about its fields).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from pipeline.errors import InvalidRequest
from pipeline.legacy.values import MAX_B64, json_type
from schemas.request import (
    MAX_DURATION_MS,
    MAX_EPOCH_MS,
    MAX_FILE_NAME,
    MAX_LIVE_PATH,
    MAX_SLUG_BYTES,
    MAX_SLUG_DEPTH,
    NO_CONTROL,
    START_TIME_PATTERN,
    EpochMs,
    Text,
)

# The fields a JSON number may arrive in as 9000.0 (JavaScript senders): read as 9000.
EXACT_NUMBERS = ("StartPos", "Duration", "export_type")
_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_EXPECTED = re.compile(r"^Expected `(?P<types>[^`]+)`, got `(?P<got>[^`]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_LENGTH = re.compile(r"^Expected `(str|object|array)` of length (?P<op>[<>]=) (?P<n>\d+)")
_PHRASES = {
    "str": "a string",
    "int": "a number",
    "float": "a number",
    "bool": "true or false",
    "object": "an object",
    "array": "an array",
}
_INFORMATIONAL = "Informational: any JSON value, never read."
_B64 = Annotated[str, Meta(max_length=MAX_B64)]


class StoryBody(msgspec.Struct, frozen=True):
    """The story the clip belongs to; ``id`` is part of the job's identity."""

    id: Annotated[Text | None, Meta(examples=["4B999DC458FBC4C800000000"])] = None
    name: Annotated[Text | None, Meta(examples=["04-60C262253621833_0.0993375889"])] = None
    slug_info: Annotated[
        _B64 | dict[str, Any] | None,
        Meta(
            description="Base64 (standard or URL-safe, padded or not) of a JSON object, or "
            'the object itself, e.g. {"slug_id": "abcdefghig", "slug_name": "test"}; '
            f"at most {MAX_SLUG_DEPTH} levels deep and {MAX_SLUG_BYTES} bytes as JSON. Travels "
            "with the job, uninterpreted."
        ),
    ] = None


class ExportBody(msgspec.Struct, frozen=True):
    """The legacy POST /export body. Unknown fields are ignored; null is the same as absent."""

    LivePath: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_LIVE_PATH,
            description="The recording's manifest (.mpd or .m3u8), relative to the archive; "
            "as the Search API gives it. Empty parts and '.' are dropped; an absolute path, a "
            "scheme, '..', a backslash or a control character is refused (ErrorCode -2). Its "
            "first element picks the storage_info entry.",
            examples=["mp4/55524C2004E/55524C2041268-6bdb82b53e0a/1/stream.mpd"],
        ),
    ]
    Duration: Annotated[
        int,
        Meta(
            ge=1,
            le=MAX_DURATION_MS,
            description="Length of the clip in ms (a whole number; 9000.0 reads as 9000).",
            examples=[9000],
        ),
    ]
    StartPos: Annotated[
        EpochMs | None,
        Meta(
            description="Start of the clip, epoch ms, as the Search API gives it (a whole "
            "number). StartPos or StartTime is required; StartPos places the clip when the "
            "archive has a wall clock, else StartTime does.",
            examples=[1562253612833],
        ),
    ] = None
    StartTime: Annotated[
        Annotated[str, Meta(pattern=f"^$|{START_TIME_PATTERN}")] | None,
        Meta(
            description="Start of the clip as H:MM:SS[.mmm] from the recording's start "
            "(used when StartPos is absent or the archive has no wall clock).",
            examples=["00:13:12"],
        ),
    ] = None
    FetchMedia: Annotated[
        bool | None,
        Meta(
            description="true: export the clip (answers ErrorCode 1 until 5); false "
            "(default): the first frame only (answers ErrorCode 0 when ready)."
        ),
    ] = False
    FetchThumb: Annotated[
        bool | None,
        Meta(
            description="Accepted for compatibility; the thumbnail is the first frame either way."
        ),
    ] = False
    export_type: Annotated[
        Literal[0, 1, 2] | None,
        Meta(description="0 (default): copy with a frame-accurate smart cut; 1: H.264; 2: H.265."),
    ] = 0
    FileName: Annotated[
        Annotated[str, Meta(max_length=MAX_FILE_NAME, pattern=NO_CONTROL)] | None,
        Meta(
            description="Base name of the outputs (a trailing .mp4 or .ts picks the container; "
            "other characters than letters, digits and ._- become _). Default: the JobId.",
            examples=["04-60C262253621833_0.0993375889"],
        ),
    ] = None
    SessionId: Annotated[
        str | None,
        Meta(
            description="Credential, checked first when EXPORT_SESSION_IDS is set (ErrorCode "
            "-3 when missing or unknown). Never part of the job or of any log line."
        ),
    ] = None
    storage_info: Annotated[
        _B64 | list[dict[str, Any]] | None,
        Meta(
            description="Base64 of a JSON list of storage entries (or the list itself): "
            '{storage_purpose, storage_type: "S3", storage_enable, storage_name (bucket), '
            "storage_location (region), storage_root_folder}. The enabled entry whose "
            "storage_purpose is LivePath's first element names the archive; its bucket must "
            "be allowed (EXPORT_ALLOWED_BUCKETS; else ErrorCode -3). Absent: the service's "
            "default archive."
        ),
    ] = None
    story: Annotated[StoryBody | None, Meta(description="The story the clip belongs to.")] = None
    ServiceCaller: Annotated[Text | None, Meta(examples=["mma", "search"])] = None
    userid: Annotated[Text | None, Meta(examples=["dev@tvunetworks.com"])] = None
    PeerId: Annotated[Text | None, Meta(examples=["4D7446C8141EE167"])] = None
    S3Bucket: Annotated[
        str | None,
        Meta(
            description="Deprecated: read only when EXPORT_ALLOWED_BUCKETS names it and "
            "storage_info is absent.",
            examples=["imgbed"],
        ),
    ] = None
    S3Region: Annotated[str | None, Meta(description="Deprecated: the region of S3Bucket.")] = None
    ServiceName: Annotated[Any, Meta(description=_INFORMATIONAL)] = msgspec.field(
        default=None, name="_ServiceName"
    )
    UrlPath: Annotated[Any, Meta(description=_INFORMATIONAL)] = msgspec.field(
        default=None, name="_UrlPath"
    )
    Version: Annotated[Any, Meta(description=_INFORMATIONAL)] = msgspec.field(
        default=None, name="_Version"
    )


def read_body(body: Mapping[str, Any]) -> ExportBody:
    """``body`` (a decoded JSON object) as an ExportBody, or InvalidRequest naming the
    field as the caller wrote it."""
    try:
        return msgspec.convert(_exact_numbers(body), ExportBody)
    except msgspec.ValidationError as e:
        raise _refused(body, str(e)) from e


def _exact_numbers(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body with each float in EXACT_NUMBERS that is a whole number as an int; a float
    that is no time in ms at all (inf, 1e300) is refused here, naming the field."""
    out = dict(body)
    for name in EXACT_NUMBERS:
        value = out.get(name)
        if not isinstance(value, float):
            continue
        if not math.isfinite(value) or abs(value) >= MAX_EPOCH_MS:
            raise InvalidRequest(f"{name} {value!r} is not a time in ms", field=name)
        if value.is_integer():
            out[name] = int(value)
    return out


def _refused(body: Mapping[str, Any], text: str) -> InvalidRequest:
    m = _PATH.search(text)
    path = m.group("path") if m else ""
    detail = text[: m.start()] if m else text
    missing = _MISSING.match(detail)
    if missing:
        path = f"{path}.{missing['name']}" if path else missing["name"]
    field = legacy_field(path)
    value = _value_at(body, field)
    if missing or value is None:
        return InvalidRequest(f"{field} is required", field=field)
    shown = "" if isinstance(value, dict | list) or field == "SessionId" else f" {_short(value)}"
    expected = _EXPECTED.match(detail)
    if expected and not (expected["got"] == "float" and "int" in expected["types"]):
        what = f"{_phrase(expected['types'])}, not {json_type(value)}{shown}"
        return InvalidRequest(f"{field} must be {what}", field=field)
    return InvalidRequest(f"{field}{shown}: {human(detail)}", field=field)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def legacy_field(path: str) -> str:
    """The field a msgspec path names, as the body spells it: ``story.id`` inside the
    story, else the top-level name (``storage_info[0]`` is ``storage_info``)."""
    parts = re.split(r"[.\[]", path)
    if parts[0] == "story" and len(parts) > 1 and parts[1]:
        return f"story.{parts[1]}"
    return parts[0] or "body"


def _value_at(body: Mapping[str, Any], field: str) -> object:
    head, _, key = field.partition(".")
    value = body.get(head)
    if key:
        return value.get(key) if isinstance(value, Mapping) else None
    return value


def _phrase(types: str) -> str:
    names = [t.strip() for t in types.split("|") if t.strip() != "null"]
    return " or ".join(dict.fromkeys(_PHRASES.get(t, t) for t in names))


def human(detail: str) -> str:
    """A msgspec complaint in the words of the contract's callers."""
    length = _LENGTH.match(detail)
    if length:
        if length["op"] == ">=":
            return "must not be empty" if length["n"] == "1" else f"is shorter than {length['n']}"
        return f"is longer than {length['n']} characters"
    if "got `float`" in detail and "Expected `int" in detail:
        return "must be a whole number"
    if "matching regex" in detail:
        if "x00-" in detail:
            return "must not contain control characters"
        return "is not in the required form"
    return detail.replace("`", "")
