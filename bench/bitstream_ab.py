"""Demuxing before and after a change to the bitstream plumbing: same pictures, how fast.

    python bench/bitstream_ab.py --before DIR [--rounds 5] [--seconds 20]

``DIR`` holds the ``pipeline`` package to compare with (e.g. ``git archive <commit> pipeline
| tar -x -C DIR``); the working tree is "after".  Each flavour of synthetic archive is
written once, then every segment is demuxed by ``TrackDemuxer`` in a fresh process per tree,
alternating the trees round by round (paired, so machine load hits both alike).  Reported
per flavour: whether each segment, decoded alone by a fresh decoder, gives the same pictures
and the same audio bytes and AudioSpecificConfig, and the median after/before ratio of the
best demux time of a round.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FLAVOURS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # name: (kind, ArchiveSpec fields, writer options)
    "dash-h264": ("dash", {}, {}),
    "dash-h264-open": ("dash", {"open_gop": True}, {}),
    "dash-hevc-open": ("dash", {"codec": "hevc", "open_gop": True}, {}),
    "dash-periods": ("dash", {}, {"periods": 3}),
    "hls-ts-h264": ("hls", {}, {"container": "ts"}),
    "hls-ts-hevc-open": ("hls", {"codec": "hevc", "open_gop": True}, {"container": "ts"}),
    "hls-fmp4-h264": ("hls", {}, {"container": "fmp4"}),
}


def _write(root: Path, seconds: float) -> dict[str, str]:
    from pipeline.synthetic import ArchiveSpec, write_dash, write_hls

    out = {}
    for name, (kind, fields, opts) in FLAVOURS.items():
        spec = ArchiveSpec(seconds=seconds, **fields)
        write = write_dash if kind == "dash" else write_hls
        out[name] = str(write(root / name, spec, **opts))
    return out


def _worker(manifest: str, repeats: int) -> dict[str, Any]:
    import av

    from pipeline.manifest import RangeRequest, resolve
    from pipeline.media.source import SegmentFetcher, TrackDemuxer
    from pipeline.storage import Blobs

    res = resolve(Blobs(), manifest, RangeRequest(None, 0.0, 3_600_000))
    fetcher = SegmentFetcher(Blobs())
    for ref in res.video:
        fetcher.fetch(ref)  # warm the page cache and the init cache
    best = float("inf")
    for _ in range(repeats):
        demuxer = TrackDemuxer(fetcher, want_video=True, want_audio=res.audio_muxed)
        t0 = time.perf_counter()
        segments = [demuxer.load(ref) for ref in res.video]
        best = min(best, time.perf_counter() - t0)
    pictures, audio = [], []
    for seg in segments:
        assert seg.video_info is not None
        decoder = av.CodecContext.create(seg.video_info.codec, "r")
        frames = [f for p in seg.video for f in decoder.decode(av.Packet(p.data))]
        frames += decoder.decode(None)
        pictures.append([_digest(f.to_ndarray(format="yuv420p").tobytes()) for f in frames])
        asc = seg.audio_info.extradata.hex() if seg.audio_info and seg.audio_info.extradata else ""
        audio.append([asc, _digest(b"".join(p.data for p in seg.audio))])
    return {"seconds": best, "pictures": pictures, "audio": audio}


def _digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:12]


def _run(tree: Path, manifest: str, repeats: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, __file__, "_worker", manifest, str(repeats)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def main() -> None:
    if sys.argv[1:2] == ["_worker"]:
        print(json.dumps(_worker(sys.argv[2], int(sys.argv[3]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    after = Path(__file__).resolve().parent.parent
    manifests = _write(Path(tempfile.mkdtemp()), args.seconds)
    for name, manifest in manifests.items():
        ratios, same = [], True
        for _ in range(args.rounds):
            b = _run(args.before, manifest, args.repeats)
            a = _run(after, manifest, args.repeats)
            ratios.append(a["seconds"] / b["seconds"])
            same = same and a["pictures"] == b["pictures"] and a["audio"] == b["audio"]
        print(
            f"{name:18} same pictures and audio: {same!s:5}  "
            f"after/before {statistics.median(ratios):.3f} "
            f"(rounds {min(ratios):.3f}..{max(ratios):.3f}, before {b['seconds'] * 1e3:.1f} ms)"
        )


if __name__ == "__main__":
    main()
