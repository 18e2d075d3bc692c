"""A track's media-time-to-archive-time offset, learnt once per run of segments.

``archive_time = pts_seconds + offset``.  DASH ties media time to the manifest
(``SegmentRef.media_offset``); HLS does not, so the offset is inferred: one picture of the
run whose archive time is known is aligned (``TrackDemuxer`` picks it: the first keyframe
of the run's head segment), and the offset is kept until the next discontinuity, so frame
spacing stays exact across the run.
"""

from __future__ import annotations

from pipeline.model import SegmentRef


class TrackClock:
    """Maps one track's media timestamps to archive time across segments."""

    def __init__(self) -> None:
        self._offset: float | None = None

    def infers(self, ref: SegmentRef) -> bool:
        """Whether ``ref`` sets the offset from its media (no tie in the manifest)."""
        return ref.media_offset is None and (self._offset is None or ref.discontinuity)

    def offset_for(self, ref: SegmentRef, start: float, media: float) -> float:
        """The offset of ``ref``; ``media`` (s) is a picture of its run shown at ``start``."""
        if ref.media_offset is not None:
            self._offset = ref.media_offset
            return ref.media_offset
        if self.infers(ref):
            self._offset = start - media
        assert self._offset is not None
        return self._offset

    @property
    def current(self) -> float | None:
        return self._offset

    def skipped(self, ref: SegmentRef) -> None:
        """``ref`` could not be read; if timestamps restarted there, realign on the next."""
        if ref.discontinuity:
            self._offset = None


class FixedClock(TrackClock):
    """An offset already learnt, for a segment read out of turn (``load_out_of_turn``)."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        self._offset = offset

    def infers(self, ref: SegmentRef) -> bool:
        return False

    def offset_for(self, ref: SegmentRef, start: float, media: float) -> float:
        if ref.media_offset is not None:
            return ref.media_offset
        assert self._offset is not None
        return self._offset
