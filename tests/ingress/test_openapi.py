"""/openapi.json is valid OpenAPI 3.1, documents every route of the app, and cannot drift
from the code: the contract's bodies pass its request schema as they pass
parse_export_body, and the answers legacy_response really gives pass its response schemas.
/docs is a page that loads nothing from another origin (ingress/openapi.py)."""

from __future__ import annotations

import asyncio
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

import schemas
from ingress import http, openapi
from pipeline import errors
from pipeline.errors import ExportError, InvalidRequest, Overloaded, SourceNotFound
from pipeline.jobs import JobStatus
from pipeline.legacy.response import ErrorCodeValue, legacy_response
from pipeline.settings import Settings
from tests.ingress.http_client import BODY, ingress_for, with_client
from tests.pipeline.legacy.bodies import media_body, parse, thumb_body

DOC = openapi.openapi_document()
JOB = "0123456789ABCDEF0123456789ABCDEF"
NOW = 1_700_000_000_000


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, worker_id="test")


def _validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator for one component, its $refs resolved inside the document."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": DOC["components"]}
    return jsonschema.Draft202012Validator(schema)


def _answer_schema(path: str, method: str) -> jsonschema.Draft202012Validator:
    content = DOC["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    return jsonschema.Draft202012Validator({**content["schema"], "components": DOC["components"]})


BODY_SCHEMA = _validator("ExportBody")
ANSWER_SCHEMA = _answer_schema("/export", "post")


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"].startswith("3.1")
    validate(DOC)  # raises on the first error


def test_every_route_of_the_app_is_documented_and_every_documented_route_exists(
    tmp_path: Path,
) -> None:
    pipe, _, ingress = ingress_for(tmp_path)
    app = ingress.web_app()
    pipe.ctx.close()

    def shape(path: str) -> str:  # /export/{job_id} and /export/{JobId} are one route
        return re.sub(r"\{[^}]*\}", "{}", path)

    served = {
        (shape(r.resource.canonical), r.method.lower())
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    documented = {(shape(p), m) for p, ops in DOC["paths"].items() for m in ops}
    assert served == documented


def test_the_ingress_reads_the_session_where_the_document_says() -> None:
    assert (openapi.SESSION_HEADER, openapi.SESSION_QUERY) == (
        http.SESSION_HEADER,
        http.SESSION_QUERY,
    )
    schemes = DOC["components"]["securitySchemes"]
    assert schemes["SessionHeader"]["name"] == http.SESSION_HEADER
    assert schemes["SessionQuery"]["name"] == http.SESSION_QUERY


@pytest.mark.parametrize(
    "body",
    [
        *(example for _, example in openapi.REQUEST_EXAMPLES.values()),
        media_body(),
        thumb_body(),
        media_body(Duration=9000.0, export_type=2.0),  # JavaScript senders' whole numbers
    ],
)
def test_the_contracts_bodies_pass_the_schema_and_the_parser(
    body: dict[str, Any], settings: Settings
) -> None:
    BODY_SCHEMA.validate(body)
    assert parse(body, settings).duration_ms == 9000


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"Duration": "9000"}, "Duration"),
        ({"Duration": 0}, "Duration"),
        ({"Duration": 1500.5}, "Duration"),
        ({"StartPos": -5}, "StartPos"),
        ({"StartTime": "13 minutes"}, "StartTime"),
        ({"export_type": 3}, "export_type"),
        ({"FetchMedia": "true"}, "FetchMedia"),
        ({"FileName": "x" * 300}, "FileName"),
        ({"LivePath": 5}, "LivePath"),
        ({"story": {"id": 5}}, "story.id"),
        ({"userid": "a\x00b"}, "userid"),
    ],
)
def test_a_body_the_schema_refuses_the_parser_refuses_naming_the_same_field(
    change: dict[str, Any], field: str, settings: Settings
) -> None:
    body = media_body(**change)
    errors_found = list(BODY_SCHEMA.iter_errors(body))
    assert errors_found, change
    assert {_field(e) for e in errors_found} == {field}
    with pytest.raises(InvalidRequest) as info:
        parse(body, settings)
    assert info.value.field == field


def _field(error: jsonschema.ValidationError) -> str:
    """The field an error is about: the deepest path among the branches of an anyOf."""
    paths = [list(error.absolute_path), *(_field(e).split(".") for e in error.context or ())]
    return ".".join(str(p) for p in max(paths, key=len))


def test_a_body_without_duration_or_livepath_fails_the_schema() -> None:
    assert not BODY_SCHEMA.is_valid({k: v for k, v in BODY.items() if k != "Duration"})
    assert not BODY_SCHEMA.is_valid({k: v for k, v in BODY.items() if k != "LivePath"})


@pytest.mark.parametrize("name", sorted(openapi.ANSWER_EXAMPLES))
def test_each_answer_example_passes_exactly_one_answer_schema(name: str) -> None:
    ANSWER_SCHEMA.validate(openapi.ANSWER_EXAMPLES[name][1])


def _status(kind: str, state: str, **kw: Any) -> JobStatus:
    video = f"export/{JOB}/c.mp4" if kind == "media" else None
    return JobStatus(
        job_id=JOB, kind=kind, state=state, image_key=f"export/{JOB}/c.jpg", video_key=video, **kw
    )  # type: ignore[arg-type]


def _every_error() -> list[ExportError]:
    classes = [c for c in vars(errors).values() if isinstance(c, type)]
    return [
        c("it went wrong", field="Duration")
        for c in classes
        if issubclass(c, ExportError) and c.__module__ == errors.__name__
    ]


def test_the_answers_legacy_response_gives_pass_the_response_schema(
    tmp_path: Path, settings: Settings
) -> None:
    media, thumb = parse(media_body(), settings), parse(thumb_body(), settings)
    failed = {"type": "SourceNotFound", "code": -1, "message": "no archive", "field": "LivePath"}
    answers = [
        legacy_response(media, None, now_ms=NOW),
        legacy_response(thumb, None, now_ms=NOW),
        legacy_response(None, _status("media", "transcoding", progress=0.5), now_ms=NOW),
        legacy_response(None, _status("media", "waiting_live", lack_length_ms=9), now_ms=NOW),
        legacy_response(None, _status("media", "done", lack_length_ms=1200), now_ms=NOW),
        legacy_response(None, _status("thumbnail", "done"), now_ms=NOW),
        legacy_response(None, _status("media", "failed", error=failed), now_ms=NOW),
        legacy_response(media, None, error=SourceNotFound("gone", obj="x"), now_ms=NOW),
        legacy_response(thumb, None, error=Overloaded("full"), now_ms=NOW),
        *(legacy_response(None, None, error=e, now_ms=NOW) for e in _every_error()),
    ]
    codes = set()
    for answer in answers:
        ANSWER_SCHEMA.validate(answer)
        codes.add(answer["ErrorCode"])
    assert {0, 1, 5, -1, -2, -3, -4, -5, -6, -9} <= codes


def test_the_answers_over_http_pass_the_documented_schemas(tmp_path: Path) -> None:
    pipe, _, ingress = ingress_for(tmp_path)
    health = _validator("Health")
    polls = _answer_schema("/export/{JobId}", "get")

    async def check(client: TestClient) -> None:
        ANSWER_SCHEMA.validate(await (await client.post("/export", json=BODY)).json())
        ANSWER_SCHEMA.validate(await (await client.post("/export", data=b"[")).json())
        for job_id in ("A" * 32, "not-a-job"):
            polls.validate(await (await client.get(f"/export/{job_id}")).json())
        health.validate(await (await client.get("/healthz")).json())
        served = await client.get("/openapi.json")
        assert served.content_type == "application/json"
        assert await served.json() == DOC

    with_client(ingress, check)
    pipe.ctx.close()


def test_the_error_codes_an_answer_may_carry_are_those_of_the_error_classes() -> None:
    def subclasses(cls: type[ExportError]) -> set[type[ExportError]]:
        return {cls}.union(*(subclasses(c) for c in cls.__subclasses__()))

    assert schemas.InvalidEvent  # loaded: its subclass counts too
    assert set(get_args(ErrorCodeValue)) == {c.code for c in subclasses(ExportError)}
    documented = {row["code"] for row in DOC["x-error-codes"]}
    assert documented == {0, 1, 5} | set(get_args(ErrorCodeValue))
    for row in DOC["x-error-codes"]:
        assert f"| {row['code']} |" in DOC["info"]["description"]
        assert row["meaning"], row


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "action", "srcset")]


def test_docs_is_a_page_that_loads_only_same_origin_resources(tmp_path: Path) -> None:
    pipe, _, ingress = ingress_for(tmp_path)
    pages: list[tuple[str, str, str]] = []

    async def check(client: TestClient) -> None:
        resp = await client.get("/docs")
        assert resp.status == 200
        pages.append(
            (resp.content_type, resp.headers["Content-Security-Policy"], await resp.text())
        )

    with_client(ingress, check)
    pipe.ctx.close()
    content_type, csp, page = pages[0]
    assert content_type == "text/html"
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    links = _Links()
    links.feed(page)
    assert {"script", "textarea", "select"} <= links.tags
    assert links.urls and all(not re.match(r"^([a-z]+:)?//", u, re.I) for u in links.urls)
    assert re.search(r"[a-z]+://|@import|url\(", page, re.I) is None  # no absolute URL at all
    assert 'fetch("openapi.json")' in page  # relative: the same origin, under any prefix


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_docs_renders_every_operation_schema_and_error_code_in_a_browser(tmp_path: Path) -> None:
    pipe, _, ingress = ingress_for(tmp_path)
    doms: list[str] = []

    async def check(client: TestClient) -> None:
        proc = await asyncio.create_subprocess_exec(
            "chromium", "--headless", "--no-sandbox", "--disable-gpu",
            f"--user-data-dir={tmp_path / 'chromium'}",
            # Virtual time runs the page's scripts (and waits for its fetch) before the dump.
            "--virtual-time-budget=10000", "--dump-dom", str(client.make_url("/docs")),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=180)
        doms.append(out.decode())

    with_client(ingress, check)
    pipe.ctx.close()
    dom = doms[0]
    for ops in DOC["paths"].values():
        for op in ops.values():
            assert f'id="op-{op["operationId"]}"' in dom, op["operationId"]
    for name in DOC["components"]["schemas"]:
        assert f'id="schema-{name}"' in dom, name
    for row in DOC["x-error-codes"]:
        assert f"<td>{row['code']}</td>" in dom, row
    assert '<option value="thumbnail">' in dom and '<option value="media">' in dom  # try it


def test_the_refused_field_example_is_what_the_service_answers(settings: Settings) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse({**openapi.MEDIA_EXAMPLE, "Duration": 1500.5}, settings)
    answer = legacy_response(None, None, error=info.value, now_ms=NOW)
    assert answer == openapi.ANSWER_EXAMPLES["bad_field"][1]
