"""Strict parsers for the text of ``EXPORT_*`` variables (the table is in pipeline.settings).

A parser takes (variable, label for messages, stripped raw text) and returns the value or
raises :class:`~pipeline.errors.InvalidRequest` whose ``field`` is the variable and whose
message quotes the bad text (never for credentials, see :func:`session_ids`).  The rules
that are policy (which bucket names, which presets) are given by the settings table.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import InvalidRequest

Parser = Callable[[str, str, str], Any]  # (variable, label for messages, raw text) -> value

_INT = re.compile(r"^[+-]?\d+$")
_HOST = re.compile(r"^[A-Za-z0-9._-]+$|^\[[0-9A-Fa-f:.]+\]$")
_TOKEN = re.compile(r"^[A-Za-z0-9._:@+=/-]{1,256}$")
_WORKER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def fail(var: str, label: str, raw: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"{label}={raw!r} is invalid: {why}", field=var)


def whole(lo: int, hi: int) -> Parser:
    """A whole number in lo..hi (no signs of units, no underscores, no exponent)."""

    def parse(var: str, label: str, raw: str) -> int:
        if not _INT.match(raw):
            raise fail(var, label, raw, f"expected a whole number {lo}..{hi}")
        value = int(raw)
        if not lo <= value <= hi:
            raise fail(var, label, raw, f"must be between {lo} and {hi}")
        return value

    return parse


def one_of(choices: Collection[str]) -> Parser:
    def parse(var: str, label: str, raw: str) -> str:
        if raw not in choices:
            raise fail(var, label, raw, f"expected one of {', '.join(choices)}")
        return raw

    return parse


def host(var: str, label: str, raw: str) -> str:
    if not _HOST.match(raw):
        raise fail(var, label, raw, "expected a host name or IP address")
    return raw


def bootstrap(var: str, label: str, raw: str) -> str:
    servers = [s.strip() for s in raw.split(",")]
    for server in servers:
        name, sep, port = server.rpartition(":")
        if not sep or not name or not _HOST.match(name) or not port.isdigit():
            raise fail(var, label, raw, f"{server!r} is not HOST:PORT (comma-separated)")
        if not 1 <= int(port) <= 65535:
            raise fail(var, label, raw, f"port {port} out of range in {server!r}")
    return ",".join(servers)


def path(var: str, label: str, raw: str) -> Path:
    if "\x00" in raw or "://" in raw:
        raise fail(var, label, raw, "expected a local folder path")
    return Path(raw)


def storage_url(bucket_name: re.Pattern[str]) -> Parser:
    """A local folder or ``s3://bucket[/prefix]`` (trailing slashes dropped)."""

    def parse(var: str, label: str, raw: str) -> str:
        if "\x00" in raw:
            raise fail(var, label, raw, "expected a folder or s3://bucket/prefix")
        if raw.startswith("s3://"):
            parts = urlsplit(raw)
            if not bucket_name.match(parts.netloc) or parts.query or parts.fragment:
                raise fail(var, label, raw, "expected s3://bucket[/prefix]")
            if ".." in parts.path.split("/"):
                raise fail(var, label, raw, "the prefix must not contain '..'")
            return raw.rstrip("/")
        if "://" in raw:
            raise fail(var, label, raw, "only local folders and s3://bucket/prefix are supported")
        return raw

    return parse


def http_url(var: str, label: str, raw: str) -> str:
    parts = urlsplit(raw)
    try:
        port_ok = parts.port is None or 1 <= parts.port <= 65535
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise fail(var, label, raw, "expected http(s)://HOST[:PORT]")
    return raw.rstrip("/")


def region(var: str, label: str, raw: str) -> str:
    # The rule an event's source.region is held to; imported here, not at the top, since
    # schemas (msgspec and every event type) is no part of a `mediaexport thumb` process.
    from schemas.request import REGION_PATTERN

    if not re.match(REGION_PATTERN, raw):
        raise fail(var, label, raw, "expected a region name such as us-west-1")
    return raw


def bucket_names(bucket_name: re.Pattern[str]) -> Parser:
    def parse(var: str, label: str, raw: str) -> frozenset[str]:
        items = [s.strip() for s in raw.split(",") if s.strip()]
        if not items:
            raise fail(var, label, raw, "expected a comma-separated list of bucket names")
        for item in items:
            if not bucket_name.match(item):
                raise fail(var, label, raw, f"{item!r} is not a valid bucket name")
        return frozenset(items)

    return parse


def session_ids(var: str, label: str, raw: str) -> frozenset[str]:
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


def executable(var: str, label: str, raw: str) -> str:
    if not os.path.isfile(raw) or not os.access(raw, os.X_OK):
        raise fail(var, label, raw, "not an executable file")
    return raw


def worker_id(var: str, label: str, raw: str) -> str:
    if not _WORKER_ID.match(raw):
        raise fail(var, label, raw, "expected 1-128 letters, digits or ._:-")
    return raw


def text(var: str, label: str, raw: str) -> str:
    """Printable text on one line, up to 256 characters (a user name)."""
    if len(raw) > 256 or not raw.isprintable():
        raise fail(var, label, raw, "expected up to 256 printable characters on one line")
    return raw


def secret(var: str, label: str, raw: str) -> str:
    """Like :func:`text`, but a credential: the error never quotes the value."""
    if len(raw) > 4096 or not raw.isprintable():
        raise InvalidRequest(
            f"{label} is invalid: expected up to 4096 printable characters on one line",
            field=var,
        )
    return raw


def readable_file(var: str, label: str, raw: str) -> Path:
    if not os.path.isfile(raw) or not os.access(raw, os.R_OK):
        raise fail(var, label, raw, "not a readable file")
    return Path(raw)
