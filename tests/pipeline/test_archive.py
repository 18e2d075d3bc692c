"""Nothing is read outside the archive a request names, whatever its manifest says."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pipeline import stages
from pipeline.archive import ConfinedReader, archive_root, inside
from pipeline.errors import MediaError
from pipeline.legacy.request import parse_export_body
from pipeline.settings import Settings
from pipeline.storage import Blobs
from pipeline.synthetic import ArchiveSpec, write_dash
from schemas import StageTask
from schemas.request import ArchiveSource

SPEC = ArchiveSpec(seconds=4.0)


@pytest.mark.parametrize(
    ("location", "root", "ok"),
    [
        ("/srv/archive/mp4/a/seg.m4s", "/srv/archive", True),
        ("/srv/archive/../etc/passwd", "/srv/archive", False),
        ("/srv/archive-other/x", "/srv/archive", False),
        ("/etc/passwd", "/srv/archive", False),
        ("s3://bucket/x", "/srv/archive", False),
        ("s3://bucket/rec/mp4/seg.m4s", "s3://bucket/rec", True),
        ("s3://bucket/rec/../other/seg.m4s", "s3://bucket/rec", False),
        ("s3://bucket/recordings/seg.m4s", "s3://bucket/rec", False),
        ("s3://other/rec/seg.m4s", "s3://bucket/rec", False),
        ("/srv/archive/seg.m4s", "s3://bucket/rec", False),
        ("s3://bucket/anything", "s3://bucket", True),
    ],
)
def test_inside_the_root_only(location: str, root: str, ok: bool) -> None:
    assert inside(location, root) is ok


def test_a_symlink_out_of_the_archive_is_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    (tmp_path / "secret").write_text("secret")
    (root / "seg.m4s").symlink_to(tmp_path / "secret")
    reader = ConfinedReader(Blobs(), archive_root(ArchiveSource(), Settings(archive_url=str(root))))
    with pytest.raises(MediaError) as info:
        reader.read(str(root / "seg.m4s"))
    assert "outside the archive" in str(info.value)


@pytest.mark.parametrize("ref", ["../../../../secret.m4s", "/etc/hostname", "file:///etc/hostname"])
def test_a_manifest_pointing_outside_its_archive_fails_the_job(tmp_path: Path, ref: str) -> None:
    archive = tmp_path / "archive"
    folder = archive / "mp4" / "cam" / "1"
    write_dash(folder, SPEC)
    (tmp_path / "secret.m4s").write_bytes(b"\x00" * 64)
    mpd = folder / "stream.mpd"
    text = mpd.read_text()
    assert 'initialization="' in text
    start = text.index('initialization="') + len('initialization="')
    mpd.write_text(text[:start] + ref + text[text.index('"', start) :])
    settings = Settings(data_dir=tmp_path / "data", archive_url=str(archive))
    assert SPEC.epoch_ms is not None
    body = {"StartPos": SPEC.epoch_ms + 400, "Duration": 1000, "LivePath": "mp4/cam/1/stream.mpd"}
    req = parse_export_body(body, settings, now_ms=1)
    ctx = stages.StageContext.from_settings(settings)
    try:
        task = StageTask(job_id=req.job_id, request=req)

        async def publish(event: object) -> None:
            return None

        with pytest.raises(MediaError) as info:
            asyncio.run(stages.frame_step(ctx, task, publish))
    finally:
        ctx.close()
    assert "outside the archive" in str(info.value)
