"""orjson for tables and files: the codec faust uses for table values (events are msgspec)."""

from __future__ import annotations

from typing import Any

import orjson

NAME = "orjson"


def dumps(obj: Any) -> bytes:
    # OPT_NON_STR_KEYS: stage timings and metadata may be keyed by ints in user data.
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)


def register() -> None:
    """Make ``serializer="orjson"`` available to faust (idempotent).  Imported here, not at
    module level, so that the domain can use this codec without loading faust."""
    from faust.serializers import codecs

    class OrjsonCodec(codecs.Codec):
        def _dumps(self, obj: Any) -> bytes:
            return dumps(obj)

        def _loads(self, s: bytes) -> Any:
            return loads(s)

    if NAME not in codecs.codecs:
        codecs.register(NAME, OrjsonCodec())
