"""The export request: one typed definition for both doors.

A legacy ``POST /export`` body (pipeline/legacy/request.py) and an event a search service
publishes straight onto ``export.requests`` become the same :class:`ExportRequest` through the same
:func:`schemas.convert` / :func:`schemas.decode`, so the two doors can never disagree: every
type, range and length rule is a ``Meta`` constraint below (and so in the generated JSON
Schema), and the rules that span fields (a range needs StartPos or StartTime, the output
keys are the job's deterministic keys, the JobId is the hash of the request, bounded
``slug``) live in ``__post_init__``.  Nothing here names a local path: ``source`` is the
archive's logical location, resolved to a manifest by the worker (pipeline/archive.py
``archive_manifest``), so an event cannot point a stage outside the configured roots.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from pipeline.errors import InvalidRequest
from pipeline.identity import identity_document, job_id_of
from pipeline.legacy.paths import output_keys
from pipeline.manifest.request import RangeRequest, range_request

SCHEMA_VERSION: Final = 2

MAX_LIVE_PATH = 1024
MAX_FILE_NAME = 255
MAX_TEXT = 256
MAX_DURATION_MS = 24 * 3600 * 1000
MAX_EPOCH_MS = 2**53  # JSON numbers above this are not exact anyway
MAX_SLUG_DEPTH = 16  # nesting levels of slug_info (orjson and msgspec stop near 255)
MAX_SLUG_BYTES = 48 * 1024  # slug as compact JSON: events and S3 metadata stay small
MAX_ATTEMPT = 100

NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
# A clean relative path: no leading '/', '~' or scheme, no '.' / '..' / empty parts, no
# backslash or control characters (pipeline.legacy.request.normalize_live_path makes one).
LIVE_PATH_PATTERN = r"^(?![/~])(?!.*://)(?!(.*/)?\.\.?(/|$))(?!.*//)[^\x00-\x1f\x7f\\]+$"
PREFIX_PATTERN = r"^$|^(?!/)(?!(.*/)?\.\.?(/|$))(?!.*//)(?!.*/$)[^\x00-\x1f\x7f\\:]+$"
# "(?!.*\n)": Python's "$" (msgspec matches with re.search) also matches before a final
# newline, which "bb\n" would otherwise slip through.
JOB_ID_PATTERN = r"^(?!.*\n)[0-9A-F]{32}$"
BUCKET_PATTERN = r"^(?!.*\n)[A-Za-z0-9][A-Za-z0-9._-]{1,254}$"
REGION_PATTERN = r"^(?!.*\n)[a-z0-9][a-z0-9-]{0,62}$"
START_TIME_PATTERN = r"^\s*\d{1,3}:[0-5]?\d:[0-5]?\d(\.\d{1,3})?\s*$"
# One file name inside the job's folder (letters of any script, digits, "._-"); the exact
# name is the one pipeline.legacy.paths.output_keys derives from FileName (see __post_init__).
_NAME = r"(?![.-])[^/\\\x00-\x1f\x7f]{1,150}"
IMAGE_KEY_PATTERN = rf"^export/[0-9A-F]{{32}}/{_NAME}\.jpg$"
VIDEO_KEY_PATTERN = rf"^export/[0-9A-F]{{32}}/{_NAME}\.(mp4|ts)$"

JobId = Annotated[
    str, Meta(pattern=JOB_ID_PATTERN, max_length=32, description="32 upper-case hex digits")
]
Text = Annotated[str, Meta(max_length=MAX_TEXT, pattern=NO_CONTROL)]
EpochMs = Annotated[int, Meta(ge=0, lt=MAX_EPOCH_MS)]
Kind = Literal["thumbnail", "media"]


class Story(msgspec.Struct, frozen=True, omit_defaults=True):
    """The legacy ``story`` without its slug_info (which travels decoded, as ``slug``)."""

    id: Text | None = None
    name: Text | None = None


class ArchiveSource(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the archive lives, logically: a bucket and a prefix, or the service's default
    archive (``bucket`` null: EXPORT_ARCHIVE_URL).  Never a local path."""

    bucket: Annotated[str, Meta(pattern=BUCKET_PATTERN)] | None = None
    region: Annotated[str, Meta(pattern=REGION_PATTERN)] | None = None
    prefix: Annotated[
        str, Meta(max_length=MAX_LIVE_PATH, pattern=PREFIX_PATTERN, description="folder")
    ] = ""

    def __post_init__(self) -> None:
        if self.bucket is None and (self.region or self.prefix):
            raise InvalidRequest(
                "source.region and source.prefix need a source.bucket", field="source.bucket"
            )


class ExportRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What travels on export.requests: validated, normalised, without credentials."""

    schema_version: Literal[2] = SCHEMA_VERSION
    job_id: JobId
    kind: Kind
    live_path: Annotated[
        str, Meta(min_length=1, max_length=MAX_LIVE_PATH, pattern=LIVE_PATH_PATTERN)
    ]
    duration_ms: Annotated[int, Meta(ge=1, le=MAX_DURATION_MS)]
    source: ArchiveSource
    image_key: Annotated[str, Meta(pattern=IMAGE_KEY_PATTERN)]
    video_key: Annotated[str, Meta(pattern=VIDEO_KEY_PATTERN)] | None = None
    start_pos_ms: EpochMs | None = None
    start_time: Annotated[str, Meta(pattern=START_TIME_PATTERN)] | None = None
    export_type: Literal[0, 1, 2] = 0  # 0 copy (smart cut), 1 H.264, 2 H.265
    file_name: Annotated[str, Meta(max_length=MAX_FILE_NAME, pattern=NO_CONTROL)] | None = None
    service_caller: Text | None = None
    user_id: Text | None = None
    peer_id: Text | None = None
    story: Story | None = None
    slug: (
        Annotated[
            dict[str, Any],
            Meta(
                description=f"decoded slug_info: at most {MAX_SLUG_DEPTH} levels deep and "
                f"{MAX_SLUG_BYTES} bytes as JSON"
            ),
        ]
        | None
    ) = None
    submitted_at_ms: EpochMs = 0
    # How many times the supervisor re-drove this job (a re-driven event is not a duplicate).
    attempt: Annotated[int, Meta(ge=0, le=MAX_ATTEMPT)] = 0

    def __post_init__(self) -> None:
        range_request(self.start_pos_ms, self.start_time, self.duration_ms)
        check_slug(self.slug)
        if self.kind == "media" and self.video_key is None:
            raise InvalidRequest("a media request needs a video_key", field="video_key")
        expected = self.expected_job_id()
        if self.job_id != expected:
            raise InvalidRequest(
                f"job_id {self.job_id} is not the JobId of this request ({expected}; "
                "see the README, 'JobId')",
                field="job_id",
            )
        image_key, video_key = output_keys(self.job_id, self.kind, self.file_name)
        if self.image_key != image_key:
            raise InvalidRequest(
                f"image_key {self.image_key!r} is not the job's output key {image_key!r}",
                field="image_key",
            )
        if self.video_key != video_key:
            raise InvalidRequest(
                f"video_key {self.video_key!r} is not the job's output key {video_key!r}",
                field="video_key",
            )

    def expected_job_id(self) -> str:
        """The JobId this request must carry (the same for both doors)."""
        return job_id_of(
            identity_document(
                live_path=self.live_path,
                start_pos_ms=self.start_pos_ms,
                start_time=self.start_time,
                duration_ms=self.duration_ms,
                export_type=self.export_type,
                kind=self.kind,
                file_name=self.file_name,
                story_id=self.story.id if self.story is not None else None,
                bucket=self.source.bucket,
                prefix=self.source.prefix,
            )
        )

    def range(self) -> RangeRequest:
        """The requested range, as manifest resolution takes it."""
        return range_request(self.start_pos_ms, self.start_time, self.duration_ms)

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


def check_slug(slug: object, *, field: str = "slug") -> None:
    """A slug nested deeper than MAX_SLUG_DEPTH or larger than MAX_SLUG_BYTES is refused:
    JSON encoders give up near 255 levels, and every event and S3 object carries it."""
    if slug is None:
        return
    if _depth(slug, MAX_SLUG_DEPTH + 1) > MAX_SLUG_DEPTH:
        raise InvalidRequest(f"{field} is nested deeper than {MAX_SLUG_DEPTH} levels", field=field)
    size = len(msgspec.json.encode(slug))
    if size > MAX_SLUG_BYTES:
        raise InvalidRequest(
            f"{field} is {size} bytes as JSON (the limit is {MAX_SLUG_BYTES})", field=field
        )


def _depth(value: object, limit: int) -> int:
    """Nesting depth of a JSON value, counting stops once it passes ``limit``."""
    if limit <= 0:
        return 1
    if isinstance(value, dict):
        return 1 + max((_depth(v, limit - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v, limit - 1) for v in value), default=0)
    return 0
