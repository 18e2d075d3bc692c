"""The ingress's access log, through Ingress.start as the service runs it (real broker: the
ingress's metrics read consumer lag and export.completed from it)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from service.broker import free_port
from tests.ingress.http_client import ingress_for


@pytest.mark.integration
def test_each_request_is_one_access_line_without_its_query(
    tmp_path: Path, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    pipe, replica, ingress = ingress_for(tmp_path)
    replica.bootstrap = kafka_bootstrap
    port = free_port()

    async def main() -> None:
        await ingress.start("127.0.0.1", port)
        try:
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{port}/export/{'A' * 32}?SessionId=secret-id"
                async with http.get(url) as resp:
                    assert resp.status == 200
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    assert resp.status == 200
        finally:
            await ingress.stop()

    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        asyncio.run(main())
    lines = [r for r in caplog.records if r.name == "aiohttp.access"]
    assert [(vars(r)["method"], vars(r)["path"], vars(r)["status"]) for r in lines] == [
        ("GET", f"/export/{'A' * 32}", 200),
        ("GET", "/healthz", 200),
    ]
    assert lines[0].getMessage().startswith(f"127.0.0.1 GET /export/{'A' * 32} 200 ")
    assert not any("secret-id" in r.getMessage() for r in caplog.records)
    pipe.ctx.close()
