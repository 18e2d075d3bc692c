"""Hypothesis fuzz of direct events on export.requests: whatever a producer writes, the
resolve agent either takes the job on or ends it (a failed export.completed naming why), and
nothing is ever written or read outside the configured roots.

Bounded and derandomized (CI sees the same inputs every run), one archive for all examples."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from agents import resolve
from pipeline import stages
from pipeline.legacy.request import parse_export_body
from pipeline.settings import Settings
from pipeline.synthetic import ArchiveSpec, write_dash
from tests.agents.fakes import FakePipe, event

SPEC = ArchiveSpec(seconds=2.0)
LIVE_PATH = "mp4/cam/1/stream.mpd"
FIELDS = [
    "schema_version",
    "job_id",
    "kind",
    "live_path",
    "start_pos_ms",
    "start_time",
    "duration_ms",
    "export_type",
    "file_name",
    "story",
    "slug",
    "source",
    "image_key",
    "video_key",
    "submitted_at_ms",
    "attempt",
]
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
NASTY = st.sampled_from(
    ["../../../pwn/x.jpg", "/etc/passwd", "s3://other/x", "mp4/../../etc", "\x00", "A" * 32 + "\n"]
)


def test_any_direct_event_is_taken_on_or_ended(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    write_dash(archive / Path(LIVE_PATH).parent, SPEC)
    out = tmp_path / "out"
    cfg = Settings(data_dir=tmp_path / "data", archive_url=str(archive), output_url=str(out))
    assert SPEC.epoch_ms is not None
    body = {"StartPos": SPEC.epoch_ms + 400, "Duration": 1000, "LivePath": LIVE_PATH}
    good = parse_export_body(body, cfg, now_ms=1).to_dict()
    ctx = stages.StageContext.from_settings(cfg)
    outcomes: dict[str, int] = {}

    @settings(
        max_examples=200,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(changes=st.dictionaries(st.sampled_from(FIELDS), JSON | NASTY, min_size=1, max_size=3))
    def check(changes: dict[str, Any]) -> None:
        pipe = FakePipe(settings=cfg, ctx=ctx)
        bad = {**good, **changes}
        raw = json.dumps(bad).encode()
        asyncio.run(resolve.handle(pipe, event(schemas.REQUESTS, raw, str(good["job_id"]))))
        routed = pipe.sent[schemas.FRAMES] + pipe.sent[schemas.TRANSCODES]
        ended = pipe.sent[schemas.COMPLETED] + pipe.sent[schemas.UPLOADS]
        dead = pipe.sent[schemas.DEADLETTER]
        # keyed by a job_id (as every event is), so a refused event still ends that job
        assert routed or (ended and dead), (changes, dict(pipe.sent))
        outcome = "taken on" if routed else "refused and ended"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    try:
        check()
    finally:
        ctx.close()
    assert not list(tmp_path.glob("pwn*")) and not (tmp_path.parent / "pwn").exists()
    assert not any(p.is_file() for p in out.rglob("*")), "the resolve stage writes nothing"
    print(f"direct events fuzzed: {sum(outcomes.values())}: {outcomes}")
