"""The one frozen settings object, built from ``EXPORT_*`` environment variables at start-up.

This is the only module that reads the environment.  Every variable is parsed strictly: a
bad value raises :class:`~pipeline.errors.InvalidRequest` whose ``field`` is the variable's
name and whose message quotes the bad value, so start-up fails with a line that says exactly
what to fix.  An empty value counts as unset (compose files often write ``EXPORT_X=``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import InvalidRequest
from pipeline.media.options import EncodeOptions

X26X_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
_INT = re.compile(r"^[+-]?\d+$")
_HOST = re.compile(r"^[A-Za-z0-9._-]+$|^\[[0-9A-Fa-f:.]+\]$")
# Permissive enough for legacy (pre-2018, us-east-1) bucket names, strict enough to keep
# slashes, spaces and schemes out of s3:// URLs built from them.
BUCKET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_TOKEN = re.compile(r"^[A-Za-z0-9._:@+=/-]{1,256}$")
_WORKER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_YEAR_MS = 366 * 24 * 3600 * 1000

Parser = Callable[[str, str, str], Any]  # (variable, label for messages, raw text) -> value


@dataclass(frozen=True)
class Settings:
    """Configuration of one process.  See the README's configuration table."""

    kafka_bootstrap: str | None = None  # None: `up` starts the embedded broker
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    data_dir: Path = Path("var")
    archive_url: str = ""  # "" → str(data_dir / "archive"); a folder or s3://bucket/prefix
    output_url: str = ""  # "" → str(data_dir / "exports")
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    allowed_buckets: frozenset[str] | None = None  # None: any bucket
    max_transcodes: int = 2
    max_frame_grabs: int = 4
    sync_wait_ms: int = 5000
    live_wait_ms: int = 60000
    # Credentials: kept out of repr() so that logging the settings never leaks them.
    session_ids: frozenset[str] | None = field(default=None, repr=False)
    partitions: int = 4
    tansu_bin: str | None = None
    worker_id: str = ""  # "" → "<hostname>-<pid>"
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    max_pending: int = 200  # unfinished jobs at which the ingress refuses new ones (-4)
    job_ttl_ms: int = 24 * 3600 * 1000  # finished jobs are forgotten this long after
    drain_timeout_ms: int = 60_000  # how long shutdown waits for accepted jobs
    stage_timeout_ms: int = 120_000  # a job whose status does not move this long is re-driven

    def __post_init__(self) -> None:
        # Derived defaults, so that Settings(data_dir=...) alone is a usable object too.
        data_dir = Path(self.data_dir)
        object.__setattr__(self, "data_dir", data_dir)
        if not self.archive_url:
            object.__setattr__(self, "archive_url", str(data_dir / "archive"))
        if not self.output_url:
            object.__setattr__(self, "output_url", str(data_dir / "exports"))
        if not self.worker_id:
            object.__setattr__(self, "worker_id", f"{socket.gethostname()}-{os.getpid()}")

    @property
    def auth_open(self) -> bool:
        """True when SessionId is not checked (start-up must say so)."""
        return self.session_ids is None

    def summary(self) -> dict[str, object]:
        """What start-up may log: every setting, with session ids replaced by their count."""
        out: dict[str, object] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "session_ids":
                value = "open (not checked)" if value is None else f"{len(value)} configured"
            elif isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, Path):
                value = str(value)
            elif f.name == "encode":
                value = dataclasses.asdict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build the settings from ``env`` (default: ``os.environ``).

        ``overrides`` (field names, e.g. ``http_port=9000`` from ``--port``) win over the
        environment and are validated the same way; ``None`` means "not given".  ``encode``
        may be overridden with an EncodeOptions.
        """
        source = dict(os.environ if env is None else env)
        given: dict[str, str] = {}
        encode_override: EncodeOptions | None = None
        for name, value in overrides.items():
            if value is None:
                continue
            if name == "encode":
                if not isinstance(value, EncodeOptions):
                    raise TypeError("encode override must be an EncodeOptions")
                encode_override = value
                continue
            var = _FIELD_VARS.get(name)
            if var is None:
                raise TypeError(f"Settings has no field {name!r}")
            source[var] = _override_text(value)
            given[var] = name

        def get(var: str) -> str | None:
            raw = source.get(var)
            if raw is None or raw.strip() == "":
                return None
            return raw.strip()

        def parse(var: str, parser: Parser, default: Any = None) -> Any:
            raw = get(var)
            if raw is None:
                return default
            label = f"{var} (from the {given[var]} option)" if var in given else var
            return parser(var, label, raw)

        data_dir = parse("EXPORT_DATA_DIR", _path, Path("var"))
        encode = encode_override or EncodeOptions(
            h264_preset=parse("EXPORT_H264_PRESET", _preset, "veryfast"),
            edge_h264_preset=parse("EXPORT_EDGE_H264_PRESET", _preset, "superfast"),
            h264_crf=parse("EXPORT_H264_CRF", _int(0, 51), 20),
            h265_preset=parse("EXPORT_H265_PRESET", _preset, "ultrafast"),
            h265_crf=parse("EXPORT_H265_CRF", _int(0, 51), 24),
            audio_bitrate=parse("EXPORT_AUDIO_BITRATE", _int(16_000, 512_000), 128_000),
            threads=parse("EXPORT_ENCODE_THREADS", _int(0, 256), 0),
        )
        return cls(
            kafka_bootstrap=parse("EXPORT_KAFKA_BOOTSTRAP", _bootstrap),
            http_host=parse("EXPORT_HTTP_HOST", _host, "127.0.0.1"),
            http_port=parse("EXPORT_HTTP_PORT", _int(1, 65535), 8080),
            data_dir=data_dir,
            archive_url=parse("EXPORT_ARCHIVE_URL", _storage_url, ""),
            output_url=parse("EXPORT_OUTPUT_URL", _storage_url, ""),
            s3_endpoint_url=parse("EXPORT_S3_ENDPOINT_URL", _http_url),
            s3_region=parse("EXPORT_S3_REGION", _region),
            allowed_buckets=parse("EXPORT_ALLOWED_BUCKETS", _buckets),
            max_transcodes=parse("EXPORT_MAX_TRANSCODES", _int(1, 256), 2),
            max_frame_grabs=parse("EXPORT_MAX_FRAME_GRABS", _int(1, 256), 4),
            sync_wait_ms=parse("EXPORT_SYNC_WAIT_MS", _int(0, 600_000), 5000),
            live_wait_ms=parse("EXPORT_LIVE_WAIT_MS", _int(0, 24 * 3600 * 1000), 60000),
            session_ids=parse("EXPORT_SESSION_IDS", _session_ids),
            partitions=parse("EXPORT_PARTITIONS", _int(1, 1024), 4),
            tansu_bin=parse("EXPORT_TANSU_BIN", _executable),
            worker_id=parse("EXPORT_WORKER_ID", _worker_id, ""),
            encode=encode,
            max_pending=parse("EXPORT_MAX_PENDING", _int(1, 10_000_000), 200),
            job_ttl_ms=parse("EXPORT_JOB_TTL_MS", _int(60_000, _YEAR_MS), 24 * 3600 * 1000),
            drain_timeout_ms=parse("EXPORT_DRAIN_TIMEOUT_MS", _int(0, 3600 * 1000), 60_000),
            stage_timeout_ms=parse("EXPORT_STAGE_TIMEOUT_MS", _int(1000, _YEAR_MS), 120_000),
        )

    @staticmethod
    def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
        """``EXPORT_*`` names that no setting reads (likely typos); start-up may warn."""
        source = os.environ if env is None else env
        return sorted(
            k
            for k in source
            if k.startswith("EXPORT_") and k not in ENV_VARS and not k.startswith("EXPORT_TEST_")
        )


# field name → environment variable (the overrides go through the same parsers)
_FIELD_VARS = {
    "kafka_bootstrap": "EXPORT_KAFKA_BOOTSTRAP",
    "http_host": "EXPORT_HTTP_HOST",
    "http_port": "EXPORT_HTTP_PORT",
    "data_dir": "EXPORT_DATA_DIR",
    "archive_url": "EXPORT_ARCHIVE_URL",
    "output_url": "EXPORT_OUTPUT_URL",
    "s3_endpoint_url": "EXPORT_S3_ENDPOINT_URL",
    "s3_region": "EXPORT_S3_REGION",
    "allowed_buckets": "EXPORT_ALLOWED_BUCKETS",
    "max_transcodes": "EXPORT_MAX_TRANSCODES",
    "max_frame_grabs": "EXPORT_MAX_FRAME_GRABS",
    "sync_wait_ms": "EXPORT_SYNC_WAIT_MS",
    "live_wait_ms": "EXPORT_LIVE_WAIT_MS",
    "session_ids": "EXPORT_SESSION_IDS",
    "partitions": "EXPORT_PARTITIONS",
    "tansu_bin": "EXPORT_TANSU_BIN",
    "worker_id": "EXPORT_WORKER_ID",
    "max_pending": "EXPORT_MAX_PENDING",
    "job_ttl_ms": "EXPORT_JOB_TTL_MS",
    "drain_timeout_ms": "EXPORT_DRAIN_TIMEOUT_MS",
    "stage_timeout_ms": "EXPORT_STAGE_TIMEOUT_MS",
}
ENV_VARS = frozenset(
    [
        *_FIELD_VARS.values(),
        "EXPORT_H264_PRESET",
        "EXPORT_EDGE_H264_PRESET",
        "EXPORT_H264_CRF",
        "EXPORT_H265_PRESET",
        "EXPORT_H265_CRF",
        "EXPORT_AUDIO_BITRATE",
        "EXPORT_ENCODE_THREADS",
    ]
)


def _override_text(value: object) -> str:
    if isinstance(value, str | int | Path) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, Iterable):
        items = [str(v) for v in value]
        return ",".join(sorted(items)) if items else ","
    raise TypeError(f"cannot use {value!r} as a setting")


def _fail(var: str, label: str, raw: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"{label}={raw!r} is invalid: {why}", field=var)


def _int(lo: int, hi: int) -> Parser:
    def parse(var: str, label: str, raw: str) -> int:
        if not _INT.match(raw):
            raise _fail(var, label, raw, f"expected a whole number {lo}..{hi}")
        value = int(raw)
        if not lo <= value <= hi:
            raise _fail(var, label, raw, f"must be between {lo} and {hi}")
        return value

    return parse


def _host(var: str, label: str, raw: str) -> str:
    if not _HOST.match(raw):
        raise _fail(var, label, raw, "expected a host name or IP address")
    return raw


def _bootstrap(var: str, label: str, raw: str) -> str:
    servers = [s.strip() for s in raw.split(",")]
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not host or not _HOST.match(host) or not port.isdigit():
            raise _fail(var, label, raw, f"{server!r} is not HOST:PORT (comma-separated)")
        if not 1 <= int(port) <= 65535:
            raise _fail(var, label, raw, f"port {port} out of range in {server!r}")
    return ",".join(servers)


def _path(var: str, label: str, raw: str) -> Path:
    if "\x00" in raw or "://" in raw:
        raise _fail(var, label, raw, "expected a local folder path")
    return Path(raw)


def _storage_url(var: str, label: str, raw: str) -> str:
    if "\x00" in raw:
        raise _fail(var, label, raw, "expected a folder or s3://bucket/prefix")
    if raw.startswith("s3://"):
        parts = urlsplit(raw)
        if not BUCKET_NAME.match(parts.netloc) or parts.query or parts.fragment:
            raise _fail(var, label, raw, "expected s3://bucket[/prefix]")
        if ".." in parts.path.split("/"):
            raise _fail(var, label, raw, "the prefix must not contain '..'")
        return raw.rstrip("/")
    if "://" in raw:
        raise _fail(var, label, raw, "only local folders and s3://bucket/prefix are supported")
    return raw


def _http_url(var: str, label: str, raw: str) -> str:
    parts = urlsplit(raw)
    try:
        port_ok = parts.port is None or 1 <= parts.port <= 65535
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise _fail(var, label, raw, "expected http(s)://HOST[:PORT]")
    return raw.rstrip("/")


def _region(var: str, label: str, raw: str) -> str:
    if not _REGION.match(raw):
        raise _fail(var, label, raw, "expected a region name such as us-west-1")
    return raw


def _buckets(var: str, label: str, raw: str) -> frozenset[str]:
    items = [s.strip() for s in raw.split(",") if s.strip()]
    if not items:
        raise _fail(var, label, raw, "expected a comma-separated list of bucket names")
    for item in items:
        if not BUCKET_NAME.match(item):
            raise _fail(var, label, raw, f"{item!r} is not a valid bucket name")
    return frozenset(items)


def _session_ids(var: str, label: str, raw: str) -> frozenset[str]:
    # These are credentials: errors name the variable and an entry's position, never a value.
    items = [s.strip() for s in raw.split(",") if s.strip()]
    if not items:
        raise InvalidRequest(
            f"{label} is invalid: expected a comma-separated list of session ids", field=var
        )
    for n, item in enumerate(items, 1):
        if not _TOKEN.match(item):
            raise InvalidRequest(
                f"{label} is invalid: entry {n} is not a session id "
                "(1-256 letters, digits or ._:@+=/-)",
                field=var,
            )
    return frozenset(items)


def _preset(var: str, label: str, raw: str) -> str:
    if raw not in X26X_PRESETS:
        raise _fail(var, label, raw, f"expected one of {', '.join(X26X_PRESETS)}")
    return raw


def _executable(var: str, label: str, raw: str) -> str:
    if not os.path.isfile(raw) or not os.access(raw, os.X_OK):
        raise _fail(var, label, raw, "not an executable file")
    return raw


def _worker_id(var: str, label: str, raw: str) -> str:
    if not _WORKER_ID.match(raw):
        raise _fail(var, label, raw, "expected 1-128 letters, digits or ._:-")
    return raw
