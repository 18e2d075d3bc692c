"""What grab_thumbnail and export_clip return."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.model import Gap


@dataclass(frozen=True)
class ThumbnailResult:
    path: Path
    width: int
    height: int
    time: float  # archive time of the frame that was grabbed
    size: int
    sha256: str

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


@dataclass(frozen=True)
class ClipResult:
    path: Path
    container: str  # "mp4" | "mpegts"
    duration: float  # s
    video_codec: str
    audio_codec: str | None
    width: int
    height: int
    frame_count: int
    size: int
    sha256: str
    first_frame_time: float  # archive time of the first output frame
    delivered_ms: int
    missing_ms: int  # gaps + corrupt segments + beyond live edge
    gaps: tuple[Gap, ...]
    # How the video was made: frames copied from the source and frames re-encoded (for
    # export_type 0 the re-encoded ones are the partial GOPs at the edges).
    copied_frames: int = 0
    reencoded_frames: int = 0

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["gaps"] = [
            {"start": g.start, "end": g.end, "reason": g.reason, "duration": g.duration}
            for g in self.gaps
        ]
        return d
