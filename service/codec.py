"""orjson for table values: the codec faust uses for the tables' changelogs (events are msgspec)."""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs

NAME = "orjson"


class OrjsonCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        # OPT_NON_STR_KEYS: stage timings and metadata may be keyed by ints in user data.
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


def register() -> None:
    """Make ``serializer="orjson"`` available to faust (idempotent)."""
    if NAME not in codecs.codecs:
        codecs.register(NAME, OrjsonCodec())
