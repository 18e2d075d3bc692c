"""Offline commands: ``thumb``, ``cut`` (the same code the agents call) and ``demo-archive``.

``thumb`` and ``cut`` print one JSON line describing the result and exit 0; any
:class:`~pipeline.errors.ExportError` becomes one line ``mediaexport: error: <message>`` on
stderr and exit status 2 (argparse uses 2 for bad usage too).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ExportError, InvalidRequest

if TYPE_CHECKING:
    from pipeline.model import Resolution
    from pipeline.settings import Settings
    from pipeline.storage import Blobs

EXIT_ERROR = 2


def add_commands(subparsers: Any) -> None:
    """Register thumb, cut and demo-archive on the ``mediaexport`` parser."""
    thumb = subparsers.add_parser(
        "thumb", help="JPEG of the first frame at or after StartPos (frame-accurate)"
    )
    _range_arguments(thumb, duration=False)
    thumb.add_argument("-o", "--output", required=True, type=Path, help="OUT.jpg")
    thumb.add_argument("--max-width", type=int, default=None, help="scale down to this width")
    thumb.set_defaults(func=run_thumb)

    cut = subparsers.add_parser("cut", help="export [StartPos, StartPos+Duration) as a file")
    _range_arguments(cut, duration=True)
    cut.add_argument(
        "--type",
        dest="export_type",
        type=int,
        choices=(0, 1, 2),
        default=0,
        help="0 keep the source codec (smart cut), 1 H.264, 2 H.265 (hvc1); default 0",
    )
    cut.add_argument("-o", "--output", required=True, type=Path, help="OUT.mp4 or OUT.ts")
    cut.set_defaults(func=run_cut)

    demo = subparsers.add_parser(
        "demo-archive", help="write a synthetic wall-clock-anchored recording (DASH, or HLS/TS)"
    )
    demo.add_argument("dir", type=Path, help="output folder")
    demo.add_argument("--minutes", type=float, default=1.0, help="length (default 1)")
    demo.add_argument(
        "--start-pos",
        type=int,
        default=None,
        help="epoch ms of the first frame (default: now minus the length, whole seconds)",
    )
    demo.add_argument("--hls", action="store_true", help="HLS with MPEG-TS segments")
    demo.set_defaults(func=run_demo_archive)


def _range_arguments(parser: argparse.ArgumentParser, *, duration: bool) -> None:
    parser.add_argument("manifest", help="DASH .mpd or HLS .m3u8: local path or s3://bucket/key")
    parser.add_argument("--start-pos", type=int, default=None, help="StartPos, epoch ms")
    parser.add_argument(
        "--start-time", default=None, help="StartTime HH:MM:SS from the recording's start"
    )
    if duration:
        parser.add_argument("--duration", type=int, required=True, help="Duration, ms")


def _settings() -> Settings:
    from pipeline.settings import Settings

    # Only the S3 endpoint/region and encode options matter offline, but they come from the
    # one settings object so EXPORT_S3_ENDPOINT_URL means the same here as in the service.
    # An offline command is no worker: naming it spares the host name look-up (and the
    # socket module's import, a few ms of a thumbnail process).
    return Settings.from_env(worker_id="offline")


def _blobs(settings: Settings) -> Blobs:
    from pipeline.storage import Blobs

    return Blobs(settings.s3_endpoint_url, settings.s3_region)


def _resolve(reader: Blobs, args: argparse.Namespace, duration_ms: int) -> Resolution:
    from pipeline.manifest import range_request, resolve

    request = range_request(args.start_pos, args.start_time, duration_ms)
    return resolve(reader, args.manifest, request)


def _fail(error: ExportError) -> int:
    print(f"mediaexport: error: {error}", file=sys.stderr)
    return EXIT_ERROR


def _emit(payload: dict[str, object]) -> None:
    print(json.dumps(payload, default=str), flush=True)


def run_thumb(args: argparse.Namespace) -> int:
    try:
        from pipeline.manifest import range_request
        from pipeline.media import THUMBNAIL_WINDOW_MS, grab_thumbnail, resolve_thumbnail_point

        settings = _settings()
        reader = _blobs(settings)
        request = range_request(args.start_pos, args.start_time, THUMBNAIL_WINDOW_MS)
        # The first frame at or after StartPos, past a gap when StartPos lies in one.
        res = resolve_thumbnail_point(reader, args.manifest, request)
        # A process of its own: frame threads, as ffmpeg's decoder uses.
        result = grab_thumbnail(
            reader, res, args.output, max_width=args.max_width, frame_threads=True
        )
    except ExportError as e:
        return _fail(e)
    payload = result.to_dict()
    payload.update(_anchor(res))
    _emit(payload)
    return 0


def run_cut(args: argparse.Namespace) -> int:
    progress = ProgressBar() if sys.stderr.isatty() else None
    try:
        from pipeline.media import export_clip

        settings = _settings()
        reader = _blobs(settings)
        res = _resolve(reader, args, args.duration)
        result = export_clip(
            reader,
            res,
            args.output,
            export_type=args.export_type,
            options=settings.encode,
            progress=progress,
        )
    except ExportError as e:
        if progress is not None:
            progress.close()
        return _fail(e)
    if progress is not None:
        progress.close()
    payload = result.to_dict()
    # delivered/missing are in the result already; say it explicitly for scripts that grep.
    payload.setdefault("delivered_ms", result.delivered_ms)
    payload.setdefault("missing_ms", result.missing_ms)
    payload["requested_ms"] = args.duration
    payload.update(_anchor(res))
    _emit(payload)
    return 0


def _anchor(res: Resolution) -> dict[str, object]:
    return {"manifest": res.manifest, "kind": res.kind, "clock": res.clock, "start": res.start}


def run_demo_archive(args: argparse.Namespace) -> int:
    from pipeline.synthetic import demo_spec, write_demo_archive

    try:
        spec = demo_spec(args.minutes, args.start_pos)
    except ValueError as e:
        return _fail(InvalidRequest(str(e), field="--minutes"))
    assert spec.epoch_ms is not None
    manifest = write_demo_archive(
        args.dir, minutes=args.minutes, start_pos_ms=spec.epoch_ms, hls=args.hls
    )
    length_ms = round(spec.seconds * 1000)
    _emit(
        {
            "manifest": str(manifest),
            "kind": "hls" if args.hls else "dash",
            "start_pos_ms": spec.epoch_ms,
            "end_pos_ms": spec.epoch_ms + length_ms,
            "duration_ms": length_ms,
            "width": spec.width,
            "height": spec.height,
            "fps": float(spec.fps),
        }
    )
    return 0


class ProgressBar:
    """A one-line bar on stderr, redrawn in place (only when stderr is a terminal); ``note``
    is text after the percentage (``mediaexport submit``: state, ETA, LackLength)."""

    def __init__(
        self, width: int = 30, write: Callable[[str], object] | None = None, *, label: str = "cut"
    ) -> None:
        self.width = width
        self.write = write or sys.stderr.write
        self.label = label
        self.shown = -1
        self.note = ""

    def __call__(self, fraction: float, note: str = "") -> None:
        percent = max(0, min(100, int(fraction * 100)))
        if (percent, note) == (self.shown, self.note):
            return
        self.shown, self.note = percent, note
        filled = self.width * percent // 100
        # Erase to the end of the line: a shorter note must not leave the old one's tail.
        tail = f" {note}\x1b[K" if note else ""
        bar = f"[{'#' * filled}{'.' * (self.width - filled)}]"
        self.write(f"\r{self.label} {bar} {percent:3d}%{tail}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.shown >= 0:
            self.write("\n")
