"""Demuxing before and after a change to the bitstream plumbing: same pictures, how fast.

    python bench/bitstream_ab.py --before DIR [--rounds 5] [--seconds 20] [--size 1280x720]

``DIR`` holds the ``pipeline`` package to compare with (e.g. ``git archive <commit> pipeline
| tar -x -C DIR``); the working tree is "after".  Each flavour of synthetic archive is
written once, then every segment is demuxed by ``TrackDemuxer`` in a fresh process per tree,
alternating the trees round by round (paired, so machine load hits both alike).  Reported
per flavour: whether each segment, decoded alone by a fresh decoder, gives the same pictures
and the same audio bytes and AudioSpecificConfig, and the median after/before ratio of the
best demux time of a round (CPU time of the process: other work on the machine counts less).
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


def _write(root: Path, seconds: float, size: str) -> dict[str, str]:
    from pipeline.synthetic import ArchiveSpec, write_dash, write_hls

    out = {}
    for name, (kind, fields, opts) in FLAVOURS.items():
        width, height = (int(n) for n in size.split("x"))
        spec = ArchiveSpec(seconds=seconds, width=width, height=height, **fields)
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
        t0 = time.process_time()
        segments = [demuxer.load(ref) for ref in res.video]
        best = min(best, time.process_time() - t0)
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


def _inner(manifest: str, before: Path, repeats: int) -> float:
    """Median after/before time of the changed step alone, both in this process, interleaved:
    demux each segment and make its video Annex B (and its TS AAC raw)."""
    import importlib.util
    import io

    import av
    from av.bitstream import BitStreamFilterContext

    from pipeline.manifest import RangeRequest, resolve
    from pipeline.media import nal
    from pipeline.media.source import SegmentFetcher
    from pipeline.storage import Blobs

    old = {}
    for name in ("nal", "source"):
        path = before / "pipeline" / "media" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"before_{name}", path)
        assert spec is not None and spec.loader is not None
        old[name] = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old[name])
    res = resolve(Blobs(), manifest, RangeRequest(None, 0.0, 3_600_000))
    fetcher = SegmentFetcher(Blobs())
    blobs = [fetcher.fetch(ref) for ref in res.video]

    def run_before(data: bytes) -> None:
        with av.open(io.BytesIO(data)) as c:
            vs, aus = c.streams.video[0], c.streams.audio[0] if c.streams.audio else None
            norm = old["nal"].AnnexBNormalizer(vs.codec_context.name, vs.codec_context.extradata)
            for p in c.demux([s for s in (vs, aus) if s is not None]):
                if p.size and p.stream is vs:
                    norm.convert(bytes(p), p.is_keyframe)
                elif p.size and "mpegts" in c.format.name:
                    old["source"].strip_adts(bytes(p))

    def run_after(data: bytes) -> None:
        with av.open(io.BytesIO(data)) as c:
            vs, aus = c.streams.video[0], c.streams.audio[0] if c.streams.audio else None
            record = vs.codec_context.extradata
            mp4 = bool(record and record[0] == 1)
            name = vs.codec_context.name
            vf = BitStreamFilterContext(nal.MP4_TO_ANNEXB[name], vs) if mp4 else None
            af = BitStreamFilterContext("aac_adtstoasc", aus) if aus and not mp4 else None
            norm = nal.AnnexBNormalizer(name, None if mp4 else record)
            for p in c.demux([s for s in (vs, aus) if s is not None]):
                if p.size and p.stream is vs:
                    for q in vf.filter(p) if vf else (p,):
                        if q.is_keyframe or vf is None:
                            norm.convert(bytes(q), q.is_keyframe)
                        else:
                            bytes(q)
                elif p.size and af is not None:
                    for q in af.filter(p):
                        bytes(q)

    ratios = []
    for i in range(repeats):
        times = {}
        for label, run in sorted({"b": run_before, "a": run_after}.items(), reverse=i % 2 == 0):
            t0 = time.process_time()
            for data in blobs:
                run(data)
            times[label] = time.process_time() - t0
        ratios.append(times["a"] / times["b"])
    return statistics.median(ratios)


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
    if sys.argv[1:2] == ["_inner"]:
        print(json.dumps(_inner(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--size", default="320x180", help="WxH of the top rendition")
    args = ap.parse_args()
    after = Path(__file__).resolve().parent.parent
    manifests = _write(Path(tempfile.mkdtemp()), args.seconds, args.size)
    for name, manifest in manifests.items():
        ratios, same = [], True
        for _ in range(args.rounds):
            b = _run(args.before, manifest, args.repeats)
            a = _run(after, manifest, args.repeats)
            ratios.append(a["seconds"] / b["seconds"])
            same = same and a["pictures"] == b["pictures"] and a["audio"] == b["audio"]
        cmd = [sys.executable, __file__, "_inner", manifest, str(args.before), "41"]
        env = {**os.environ, "PYTHONPATH": str(after)}
        inner = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        print(
            f"{name:18} same pictures and audio: {same!s:5}  "
            f"after/before {statistics.median(ratios):.3f} "
            f"(rounds {min(ratios):.3f}..{max(ratios):.3f}, before {b['seconds'] * 1e3:.1f} ms); "
            f"the changed step alone, interleaved: {float(inner):.3f}"
        )


if __name__ == "__main__":
    main()
