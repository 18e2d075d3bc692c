from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from pipeline.synthetic import ArchiveSpec, GrowingArchive
from tests.pipeline.synthetic.mpd_reader import NS, segments
from tests.pipeline.synthetic.test_hls import parse_media

SPEC = ArchiveSpec(seconds=8.0, width=160, height=90)


def test_dash_grows_segment_by_segment(tmp_path: Path) -> None:
    archive = GrowingArchive(tmp_path, SPEC)
    root = ET.parse(archive.manifest).getroot()
    assert root.get("type") == "dynamic"
    assert segments(archive.manifest, "vhigh") == []
    archive.publish_until(4.5)
    assert [s.start for s in segments(archive.manifest, "vhigh")] == [0.0, 2.0]
    assert ET.parse(archive.manifest).getroot().get("publishTime") == "2019-07-04T15:20:04.500Z"
    assert archive.live_edge_ms == SPEC.epoch_ms + 4500  # type: ignore[operator]
    # Every segment the manifest names exists (files go first, the manifest last).
    assert all(s.data is not None for s in segments(archive.manifest, "vhigh"))
    assert all(s.data is not None for s in segments(archive.manifest, "audio"))
    assert not list(tmp_path.rglob("*.tmp"))
    archive.publish_until(3.0)  # never shrinks
    assert len(segments(archive.manifest, "vhigh")) == 2
    archive.publish_until(100)
    assert len(segments(archive.manifest, "vhigh")) == 4
    archive.finish()
    root = ET.parse(archive.manifest).getroot()
    assert root.get("type") == "static"
    assert len(root.findall(".//d:S", NS)) >= 1


def test_hls_grows_without_endlist(tmp_path: Path) -> None:
    archive = GrowingArchive(tmp_path, SPEC, kind="hls")
    media = tmp_path / "vhigh/index.m3u8"
    head, entries = parse_media(media)
    assert entries == [] and "#EXT-X-ENDLIST" not in head
    archive.publish_until(2.0)
    head, entries = parse_media(media)
    assert [e.uri for e in entries] == ["seg0.ts"]
    assert (tmp_path / "vhigh/seg0.ts").exists() and not (tmp_path / "vhigh/seg1.ts").exists()
    archive.finish()
    head, entries = parse_media(media)
    assert len(entries) == 4 and "#EXT-X-ENDLIST" in head
