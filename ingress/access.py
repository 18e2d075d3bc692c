"""The ingress's access log: one line per answered request, on the ``aiohttp.access`` logger.

aiohttp's own formats would print the request line with its query string, and a read may
carry its SessionId there (``GET /export/{id}?SessionId=...``), which no log line may hold:
this logger writes the method, the path without the query, the status, the body size and the
time taken, and passes them as fields for the JSON log."""

from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class AccessLog(AbstractAccessLogger):
    """``GET /export/ABC... 200 123B 4.2ms`` (the client address first)."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        ms = round(time * 1000, 1)
        fields = {
            "remote": request.remote,
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "bytes": response.body_length,
            "ms": ms,
        }
        self.logger.info(
            "%s %s %s %d %dB %.1fms",
            request.remote,
            request.method,
            request.path,
            response.status,
            response.body_length,
            ms,
            extra=fields,
        )
