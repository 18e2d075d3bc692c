"""Benchmark: what the worker's cache (EXPORT_CACHE_MB) and skipping non-reference
pictures do for a thumbnail, and the ``mediaexport thumb`` process against ffmpeg's.

On the shared 1080p archive (bench/common.py), in one process, paired A B A B:

* cold: an empty cache, a thumbnail in a GOP never read;
* warm: the segment's bytes cached (as a worker that read it for another job), its
  pictures not;
* second: another picture of the GOP just served (one decoded already: a JPEG encode);
  and, for information, a later one (5 frames on, decoded on the decoder parked where the
  one served stopped, nothing read);
* the skip-NONREF decode against the full decode of the same GOP prefix, on a 1080p
  B-pyramid archive (the shared one has no B-frames: x264 chose none, so nothing to skip);
* the cache's memory after N distinct-GOP thumbnails with the default budget.

Then, as child processes paired A B A B, ``mediaexport thumb`` against
``ffmpeg -ss T -i stream.mpd -frames:v 1 -q:v 2 out.jpg``.  Media work is
``grab_thumbnail`` (read, demux, decode, JPEG encode and write), the manifest resolved
before.  The children run with the project's bytecode compiled (``compile_project``).

    python bench/thumb_cache.py [--work var/bench] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import bench_archive, compile_project, exact, goal, judge_thumb, median, paired

import pipeline.media.thumbnail as thumbnail
from pipeline.cache import MIB, MediaCache
from pipeline.manifest import range_request
from pipeline.media import THUMBNAIL_WINDOW_MS, grab_thumbnail, resolve_thumbnail_point
from pipeline.media.source import SegmentFetcher, TrackDemuxer
from pipeline.model import Resolution
from pipeline.settings import Settings
from pipeline.storage import Blobs
from pipeline.synthetic import ArchiveSpec, write_dash

SECOND_FRAME_MS = 40.0


def _resolve(mpd: Path, spec: ArchiveSpec, index: int) -> Resolution:
    request = range_request(spec.start_pos_ms(index), None, THUMBNAIL_WINDOW_MS)
    return resolve_thumbnail_point(Blobs(), str(mpd), request)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def cache_pairs(mpd: Path, spec: ArchiveSpec, out: Path, pairs: int) -> None:
    """Cold, warm (segment cached) and second-picture thumbnails, interleaved."""
    gop = spec.gop_frames
    gops = int(spec.seconds * float(spec.fps)) // gop
    cold_ms: list[float] = []
    warm_ms: list[float] = []
    second_ms: list[float] = []
    later_ms: list[float] = []
    judged: dict[str, list[bool]] = {"cold": [], "warm": [], "second": [], "later": []}
    blobs = Blobs()

    def grab(name: str, cache: MediaCache, index: int, times: list[float]) -> None:
        res = _resolve(mpd, spec, index)
        path = out / f"{name}.jpg"
        reader, frames = cache.reader(blobs, None), cache.frames_for(None)
        times.append(_timed(lambda: grab_thumbnail(reader, res, path, frames=frames)))
        judged[name].append(judge_thumb(path, index)[2])

    shared = MediaCache(Settings().cache_mb)
    for i in range(pairs):
        at = 30 + (i * 7) % 17  # mid-GOP, a different position each round
        grab("cold", MediaCache(Settings().cache_mb), (2 * i % gops) * gop + at, cold_ms)
        warm_gop = (2 * i + 1) % gops
        res = _resolve(mpd, spec, warm_gop * gop + at)
        reader = shared.reader(blobs, None)
        for ref in res.video[:1]:  # a job before this one read the segment
            SegmentFetcher(reader).fetch(ref)
        grab("warm", shared, warm_gop * gop + at, warm_ms)
        grab("second", shared, warm_gop * gop + at - 5, second_ms)
        grab("later", shared, warm_gop * gop + at + 5, later_ms)
    for name, times in (("cold", cold_ms), ("warm", warm_ms), ("second", second_ms)):
        print(f"thumbnail {name:6}: median {median(times):6.1f} ms  ({_list(times)})")
    print(f"thumbnail later : median {median(later_ms):6.1f} ms  (5 frames past the one served)")
    print(f"warm / cold: {median(warm_ms) / median(cold_ms):.2f}")
    second = median(second_ms)
    goal(
        "thumbnail: second picture of the GOP just served (media work)",
        f"{second:.1f} ms",
        f"< {SECOND_FRAME_MS:.0f} ms",
        second < SECOND_FRAME_MS,
    )
    for name, oks in judged.items():
        exact(f"thumbnail {name} ({len(oks)} grabs)", (None, len(oks), all(oks)))


def _list(times: list[float]) -> str:
    return " ".join(f"{t:.0f}" for t in times)


def skip_pairs(work: Path, pairs: int) -> None:
    """skip_frame NONREF against a full decode of the same prefix, 1080p B-pyramid."""
    spec = ArchiveSpec(seconds=4.0, width=1920, height=1080, preset="ultrafast", bframes=3, crf=18)
    folder = work / "archive-bpyramid-4s"
    if not (folder / "stream.mpd").exists():
        write_dash(folder, spec)
    index = 45  # late in the first GOP: the longest prefix
    res = _resolve(folder / "stream.mpd", spec, index)
    demuxer = TrackDemuxer(SegmentFetcher(Blobs()), want_video=True, want_audio=False)
    ref = res.video[0]
    seg = demuxer.load(ref)
    assert seg.video_info is not None
    packets = seg.video
    wanted = min(range(len(packets)), key=lambda i: abs(packets[i].pts - res.start))
    run = packets[: wanted + 1]
    times: dict[bool, list[float]] = {True: [], False: []}
    counts: dict[bool, int] = {}
    for _ in range(pairs):
        for skip in (False, True):
            start = time.perf_counter()
            decoded = list(thumbnail._decoded(run, seg.video_info.codec, ref, skip=skip))
            times[skip].append((time.perf_counter() - start) * 1000)
            counts[skip] = len(decoded)
            target = round(packets[wanted].pts * 90_000)
            assert any(f.pts == target for f in decoded), "the wanted picture must decode"
    full, skipped = median(times[False]), median(times[True])
    print(
        f"decode of {len(run)} packets to frame {index} (1080p, B-pyramid): full {full:.0f} ms "
        f"({counts[False]} pictures), skip NONREF {skipped:.0f} ms ({counts[True]} pictures), "
        f"ratio {skipped / full:.2f}"
    )


def memory(mpd: Path, spec: ArchiveSpec, thumbs: int) -> None:
    cache = MediaCache(Settings().cache_mb)
    reader, frames = cache.reader(Blobs(), None), cache.frames_for(None)
    gops = int(spec.seconds * float(spec.fps)) // spec.gop_frames
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(thumbs):
            index = (i % gops) * spec.gop_frames + 45
            grab_thumbnail(reader, _resolve(mpd, spec, index), Path(tmp) / "t.jpg", frames=frames)
    used, budget = cache.used / MIB, cache.budget / MIB
    print(
        f"cache after {thumbs} distinct-GOP thumbnails: objects {cache.objects.used / MIB:.0f} "
        f"MiB in {len(cache.objects)} entries, pictures {cache.frames.used / MIB:.0f} MiB in "
        f"{len(cache.frames)} segments, evictions {cache.frames.stats.evictions}"
    )
    goal(
        f"cache memory after {thumbs} thumbnails",
        f"{used:.0f} MiB",
        f"<= {budget:.0f} MiB",
        used <= budget,
    )


def processes(mpd: Path, spec: ArchiveSpec, out: Path, repeat: int) -> None:
    index = 31 * int(spec.fps) + 12  # 31.48 s
    ours = out / "cli.jpg"
    theirs = out / "ffmpeg.jpg"
    a = [sys.executable, "-m", "service.cli", "thumb", str(mpd)]
    a += ["--start-pos", str(spec.start_pos_ms(index)), "-o", str(ours)]
    b = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-ss", f"{index / float(spec.fps)}"]
    b += ["-i", str(mpd.resolve()), "-frames:v", "1", "-q:v", "2", str(theirs)]
    compile_project()
    times_a, times_b = paired(a, b, repeat)
    ratio = median(times_a) / median(times_b)
    for name, times in (("mediaexport thumb", times_a), ("ffmpeg thumbnail ", times_b)):
        ms = [t * 1000 for t in times]
        print(f"{name}: median {median(ms):.0f} ms ({_list(ms)})")
    goal("mediaexport thumb process / ffmpeg process", f"{ratio:.2f}x", "<= 1.00x", ratio <= 1.0)
    exact("mediaexport thumb", judge_thumb(ours, index))
    exact("ffmpeg -ss thumbnail (baseline)", judge_thumb(theirs, index))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("var/bench"))
    parser.add_argument("--quick", action="store_true", help="fewer pairs")
    args = parser.parse_args()
    mpd, spec = bench_archive(args.work, 60.0)
    pairs = 3 if args.quick else 9
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        cache_pairs(mpd, spec, out, pairs)
        skip_pairs(args.work, pairs)
        memory(mpd, spec, 12 if args.quick else 30)
        processes(mpd, spec, out, 4 if args.quick else 10)


if __name__ == "__main__":
    main()
