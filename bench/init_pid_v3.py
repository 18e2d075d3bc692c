"""Test-only aiokafka patch: send InitProducerId v3 instead of v0 (bench/probe_transactions.py).

aiokafka 0.14 knows only InitProducerId v0, which has no producer_id/producer_epoch fields.
Tansu 0.6's memory store (dynostore) answers UNKNOWN_SERVER_ERROR to any InitProducerId
whose producer_id/epoch are not both present and -1, i.e. to every v0-v2 request, so neither
an idempotent nor a transactional aiokafka producer can start.  With this patch the probe can
find out whether the rest of Tansu's transaction path works.  Not for the service.
"""

from __future__ import annotations


def patch_init_producer_id_v3() -> None:
    """Make aiokafka send InitProducerId v3 (producer_id/epoch -1/-1) instead of v0.

    aiokafka 0.14 only has v0, which has no producer_id/epoch fields; Tansu 0.6's
    dynostore answers UNKNOWN_SERVER_ERROR unless both are present and -1 (v3+).  This patch
    exists only to find out whether the rest of Tansu's transaction path works.
    """
    import aiokafka.producer.sender as sender
    from aiokafka.protocol.api import Request, RequestStruct, Response
    from aiokafka.protocol.transaction import InitProducerIdRequest
    from aiokafka.protocol.types import CompactString, Int16, Int32, Int64, Schema, TaggedFields

    class InitProducerIdResponseV3(Response):
        API_KEY = 22
        API_VERSION = 3
        SCHEMA = Schema(
            ("throttle_time_ms", Int32),
            ("error_code", Int16),
            ("producer_id", Int64),
            ("producer_epoch", Int16),
            ("tags", TaggedFields),
        )

    class InitProducerIdRequestV3(RequestStruct):
        FLEXIBLE_VERSION = True
        API_KEY = 22
        API_VERSION = 3
        RESPONSE_TYPE = InitProducerIdResponseV3
        SCHEMA = Schema(
            ("transactional_id", CompactString("utf-8")),
            ("transaction_timeout_ms", Int32),
            ("producer_id", Int64),
            ("producer_epoch", Int16),
            ("tags", TaggedFields),
        )

    class InitProducerIdV3(Request[InitProducerIdRequestV3]):
        API_KEY = 22

        def __init__(self, transactional_id: str | None, transaction_timeout_ms: int) -> None:
            self._tid = transactional_id
            self._timeout = transaction_timeout_ms

        def build(
            self, request_struct_class: type[InitProducerIdRequestV3]
        ) -> InitProducerIdRequestV3:
            return request_struct_class(self._tid, self._timeout, -1, -1, {})

    assert InitProducerIdRequest is sender.InitProducerIdRequest
    sender.InitProducerIdRequest = InitProducerIdV3
