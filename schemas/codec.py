"""orjson on the wire: the codec faust uses for tables and the one the stages encode with."""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs

NAME = "orjson"


def dumps(obj: Any) -> bytes:
    # OPT_NON_STR_KEYS: stage timings and metadata may be keyed by ints in user data.
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)


class OrjsonCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return loads(s)


def register() -> None:
    """Make ``serializer="orjson"`` available to faust (idempotent)."""
    if NAME not in codecs.codecs:
        codecs.register(NAME, OrjsonCodec())


register()
