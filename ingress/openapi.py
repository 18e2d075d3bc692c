"""The OpenAPI 3.1 document of the HTTP ingress, served at ``/openapi.json``, and ``/docs``.

Nothing here describes a field by hand: the request body's schema is the definition
``parse_export_body`` applies (pipeline/legacy/body.py) and the answers' schemas are the
Structs ``legacy_response`` builds (pipeline/legacy/response.py), both turned into JSON
Schema by ``msgspec.json.schema_components``; the ErrorCodes table is read off the
exception classes (pipeline/errors.py).  This module adds what a schema cannot hold: the
routes, where a SessionId goes, and the contract's examples
(/work/shared/api/export-api.md).  tests/ingress/test_openapi.py holds it to the app's
routes and to the answers the code really gives.

``/docs`` is one self-contained page (ingress/static/docs.html): it renders this document
and posts to ``/export`` from a form, loading nothing from another origin.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.resources
import inspect
from typing import Any, get_args

import msgspec
import orjson
from aiohttp import web

from ingress.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from pipeline import errors
from pipeline.legacy import response as answers
from pipeline.legacy.body import ExportBody
from pipeline.legacy.examples import MEDIA_EXAMPLE, THUMBNAIL_EXAMPLE

# As ingress/http.py reads them (a test holds the two equal; importing http here would
# make a cycle, since http.py routes to this module).
SESSION_HEADER = "X-Session-Id"
SESSION_QUERY = "SessionId"
_REF = "#/components/schemas/{name}"
_ANSWER_REFS = [{"$ref": _REF.format(name=t.__name__)} for t in answers.ANSWERS]
# Served with the page: the page may talk to this origin only.
DOCS_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'"
)


class Health(msgspec.Struct, frozen=True):
    """``GET /healthz``: 200 while accepting jobs, 503 once draining for shutdown."""

    ok: bool
    jobs_known: int
    worker: str


# --- the contract's examples -------------------------------------------------------------

_JOB = "4B999DC458FBC4C80000000000000002"
_IMAGE = f"/{_JOB}/04-60C262253621833_0.0993375889.jpg"
REQUEST_EXAMPLES = {
    "media": ("Export the clip (FetchMedia true)", MEDIA_EXAMPLE),
    "thumbnail": ("The first frame only (FetchMedia false)", THUMBNAIL_EXAMPLE),
}
ANSWER_EXAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "thumbnail_ready": (
        "FetchMedia false: the first frame is ready",
        {"TimeWait": 0, "ErrorCode": 0, "ErrorMessage": "Success", "ImagePath": _IMAGE,
         "S3Dir": "export", "JobId": _JOB},
    ),
    "work_not_finish": (
        "FetchMedia true: still working, poll again after TimeWait ms",
        {"TimeWait": 2000, "ErrorCode": 1, "ErrorMessage": "Work Not Finish",
         "ImagePath": _IMAGE, "S3Dir": "export", "LackLength": 123000,
         "State": "transcoding", "Progress": 0.42, "JobId": _JOB},
    ),
    "media_ready": (
        "FetchMedia true: the clip is ready",
        {"TimeWait": 0, "ErrorCode": 5, "ErrorMessage": "Success", "ImagePath": _IMAGE,
         "VideoPath": f"/export/{_JOB}/test.ts", "Version": "v1", "S3Dir": "export",
         "LackLength": 0, "JobId": _JOB},
    ),
    "not_such_dir": (
        "No archive at LivePath (ErrorCode -1)",
        {"TimeWait": 0, "ErrorCode": -1, "ErrorMessage": "not such dir",
         "ErrorDetail": "no archive at LivePath mp4/55524C2004E/55524C2041268-6bdb82b53e0a/"
         "1/stream.mpd (field LivePath)", "ErrorField": "LivePath", "ImagePath": _IMAGE,
         "S3Dir": "export", "VideoPath": f"/export/{_JOB}/test.ts", "Version": "v1",
         "LackLength": 0, "JobId": _JOB},
    ),
    "bad_field": (
        "A refused field, named as the body spells it (ErrorCode -2)",
        {"TimeWait": 0, "ErrorCode": -2,
         "ErrorMessage": "Duration 1500.5: must be a whole number (field Duration)",
         "ErrorField": "Duration", "JobId": ""},
    ),
}  # fmt: skip


# --- the document ------------------------------------------------------------------------


# The root class's docstring is about the code; what its -9 means to a caller:
_ROOT_MEANING = "Any other failure: an internal error (the service's log has the traceback)."


def error_codes() -> list[dict[str, Any]]:
    """One row per ErrorCode: the answers' own (0, 1, 5) and each error class's."""
    rows = [
        {"code": _literal(s), "name": s.__name__, "meaning": _doc(s)}
        for s in (answers.ThumbnailReady, answers.WorkNotFinish, answers.MediaReady)
    ]
    by_code: dict[int, list[type[errors.ExportError]]] = {}
    for cls in _error_classes():
        by_code.setdefault(cls.code, []).append(cls)
    for code in sorted(by_code, reverse=True):
        classes = by_code[code]
        fixed = next((c.legacy_message for c in classes if c.legacy_message), None)
        meaning = " ".join(_ROOT_MEANING if c is errors.ExportError else _doc(c) for c in classes)
        row = {"code": code, "name": ", ".join(c.__name__ for c in classes), "meaning": meaning}
        rows.append({**row, "ErrorMessage": fixed} if fixed else row)
    return rows


def _error_classes() -> list[type[errors.ExportError]]:
    """ExportError and its subclasses defined in pipeline/errors.py, by name."""
    return [
        c
        for _, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, errors.ExportError) and c.__module__ == errors.__name__
    ]


def _literal(struct: type[msgspec.Struct]) -> int:
    code = next(f.type for f in msgspec.structs.fields(struct) if f.name == "ErrorCode")
    return int(get_args(code)[0])


def _doc(obj: type) -> str:
    return " ".join((inspect.getdoc(obj) or "").split())


def _description() -> str:
    table = ["| ErrorCode | Meaning |", "|---:|:---|"]
    for row in error_codes():
        fixed = f' ErrorMessage is always "{row["ErrorMessage"]}".' if "ErrorMessage" in row else ""
        table.append(f"| {row['code']} | {row['name']}: {row['meaning']}{fixed} |")
    return "\n".join(
        [
            "Cuts clips and thumbnails out of recorded DASH/HLS archives. The legacy "
            "contract: every `/export` answer is HTTP 200 with a JSON body whose "
            "`ErrorCode` says what happened; posting the same body again polls the same "
            "job (its `JobId`), as does `GET /export/{JobId}`.",
            "",
            f"Authentication: a `SessionId` in the POST body; reads send it in the "
            f"`{SESSION_HEADER}` header or the `{SESSION_QUERY}` query parameter. It is "
            "checked only when `EXPORT_SESSION_IDS` is set (otherwise the service is open "
            "and says so at start-up).",
            "",
            "## ErrorCodes",
            "",
            *table,
        ]
    )


def _operation(summary: str, description: str, responses: dict[str, Any], **kw: Any) -> Any:
    return {"summary": summary, "description": description, "responses": responses, **kw}


def _answers(description: str) -> dict[str, Any]:
    examples = {k: {"summary": s, "value": v} for k, (s, v) in ANSWER_EXAMPLES.items()}
    content = {"schema": {"oneOf": _ANSWER_REFS}, "examples": examples}
    return {"200": {"description": description, "content": {"application/json": content}}}


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


_READ_SECURITY: list[dict[str, list[str]]] = [{"SessionHeader": []}, {"SessionQuery": []}, {}]


def _paths() -> dict[str, Any]:
    body_examples = {k: {"summary": s, "value": v} for k, (s, v) in REQUEST_EXAMPLES.items()}
    body_schema = {"$ref": _REF.format(name="ExportBody")}
    job_id = {
        "name": "JobId", "in": "path", "required": True,
        "description": "The JobId an answer carried (case does not matter); anything else "
        "answers ErrorCode -2 naming JobId, an unknown one -1.",
        "schema": {"type": "string", "pattern": "^[0-9A-Fa-f]{32}$"},
    }  # fmt: skip
    file_path = {
        "name": "path", "in": "path", "required": True,
        "description": "An output's key, e.g. export/<JobId>/<name>.mp4 (it holds slashes).",
        "schema": {"type": "string"},
    }  # fmt: skip
    health = {"$ref": _REF.format(name="Health")}
    binary = {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}
    return {
        "/export": {"post": _operation(
            "Start an export, or poll it by posting the same body again",
            "The legacy body, read as UTF-8 JSON whatever the Content-Type says (legacy "
            "callers send text/plain). A thumbnail waits up to EXPORT_SYNC_WAIT_MS for its "
            "JPEG; a clip answers ErrorCode 1 at once. A new job is refused with -4 and a "
            "TimeWait while EXPORT_MAX_PENDING jobs are unfinished.",
            _answers("Always 200; the ErrorCode tells the outcome."),
            operationId="postExport",
            requestBody={"required": True, "content": {
                "application/json": {"schema": body_schema, "examples": body_examples},
                "text/plain": {"schema": body_schema},
            }},
            security=[{}],
        )},
        "/export/{JobId}": {"get": _operation(
            "Poll a job by its JobId", "The same answers as POST /export.",
            _answers("Always 200; the ErrorCode tells the outcome."),
            operationId="getExport", parameters=[job_id], security=_READ_SECURITY,
        )},
        "/files/{path}": {"get": _operation(
            "Download an output", "Served only when outputs are on local disk "
            "(EXPORT_OUTPUT_URL is not s3://); otherwise fetch S3Dir + the path from S3.",
            {"200": {"description": "The file", "content": {
                "image/jpeg": binary, "video/mp4": binary, "video/mp2t": binary}},
             "401": _text(f"No valid SessionId ({SESSION_HEADER} header or "
                          f"{SESSION_QUERY} query) while EXPORT_SESSION_IDS is set"),
             "404": _text("No such output, or outputs are in S3")},
            operationId="getFile", parameters=[file_path], security=_READ_SECURITY,
        )},
        "/healthz": {"get": _operation(
            "Liveness and readiness", _doc(Health),
            {"200": {"description": "Accepting jobs",
                     "content": {"application/json": {"schema": health}}},
             "503": {"description": "Draining for shutdown",
                     "content": {"application/json": {"schema": health}}}},
            operationId="healthz",
        )},
        "/metrics": {"get": _operation(
            "Prometheus metrics", f"The text exposition format ({METRICS_CONTENT_TYPE}).",
            {"200": _text("The metrics")}, operationId="metrics",
        )},
        "/openapi.json": {"get": _operation(
            "This document", "OpenAPI 3.1, generated from the definitions that validate "
            "requests and build answers.",
            {"200": {"description": "The document",
                     "content": {"application/json": {"schema": {"type": "object"}}}}},
            operationId="openapi",
        )},
        "/": {"get": _operation(
            "Status page", "Recent jobs with state, progress, LackLength, thumbnails and "
            "downloads, polling /jobs; one self-contained page, usable on a phone.",
            {"200": {"description": "The page",
                     "content": {"text/html": {"schema": {"type": "string"}}}}},
            operationId="statusPage",
        )},
        "/jobs": {"get": _operation(
            "Recent jobs, newest first", "What the status page shows: each job's state, "
            "progress, LackLength, times, links to its outputs when they are served here, "
            "and the error of a failed one.",
            {"200": {"description": "The jobs",
                     "content": {"application/json": {"schema": {"type": "object"}}}},
             "400": {"description": "limit is not a whole number 1..200",
                     "content": {"application/json": {"schema": {"type": "object"}}}},
             "401": _text(f"No valid SessionId ({SESSION_HEADER} header or "
                          f"{SESSION_QUERY} query) while EXPORT_SESSION_IDS is set")},
            operationId="listJobs", security=_READ_SECURITY,
            parameters=[{"name": "limit", "in": "query", "required": False,
                         "description": "How many jobs (default 50).",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 200}}],
        )},
        "/docs": {"get": _operation(
            "Interactive documentation", "A page that renders this document and can post "
            "to /export; it loads nothing from another origin.",
            {"200": {"description": "The page",
                     "content": {"text/html": {"schema": {"type": "string"}}}}},
            operationId="docs",
        )},
    }  # fmt: skip


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The whole document (built once: every part of it is fixed at import time)."""
    _, schemas = msgspec.json.schema_components(
        (ExportBody, *answers.ANSWERS, Health), ref_template=_REF
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mediaexport",
            "version": importlib.metadata.version("mediaexport"),
            "description": _description(),
        },
        "paths": _paths(),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "SessionHeader": {"type": "apiKey", "in": "header", "name": SESSION_HEADER},
                "SessionQuery": {"type": "apiKey", "in": "query", "name": SESSION_QUERY},
            },
        },
        "x-error-codes": error_codes(),
    }


@functools.cache
def _document_bytes() -> bytes:
    return orjson.dumps(openapi_document())


@functools.cache
def docs_html() -> bytes:
    return importlib.resources.files("ingress").joinpath("static/docs.html").read_bytes()


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_document_bytes(), content_type="application/json")


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(
        body=docs_html(),
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": DOCS_CSP},
    )
