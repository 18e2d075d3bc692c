"""A synthetic archive that grows while a test (or the demo) watches: the live edge moves."""

from __future__ import annotations

from pathlib import Path

from pipeline.synthetic.dash import build_parts, render_dash, write_atomic
from pipeline.synthetic.hls import render_hls
from pipeline.synthetic.spec import ArchiveSpec


class GrowingArchive:
    """Encodes everything up front, then publishes segments on request.

    ``publish_until(t)`` makes every segment that ends by archive time ``t`` visible:
    segment files first, then the manifest (a dynamic MPD, or HLS playlists without
    ENDLIST), each written to a temporary name and renamed, so a reader never sees a
    half-written file or a manifest naming a segment that is not there yet.
    """

    def __init__(
        self,
        out_dir: Path,
        spec: ArchiveSpec,
        *,
        kind: str = "dash",
        layout: str = "timeline-time",
        container: str = "ts",
        name: str | None = None,
    ) -> None:
        if kind not in ("dash", "hls"):
            raise ValueError(f"kind must be 'dash' or 'hls', not {kind!r}")
        if spec.epoch_ms is None:
            raise ValueError("a live archive needs a wall-clock anchor (epoch_ms)")
        self.out_dir = Path(out_dir)
        self.spec = spec
        self.kind = kind
        self.layout = layout
        self.container = container
        self.manifest = self.out_dir / (name or ("stream.mpd" if kind == "dash" else "index.m3u8"))
        self._parts = build_parts(spec, 1)
        self._written: set[str] = set()
        self.published_until = spec.start_time
        self.finished = False
        self.publish_until(spec.start_time)

    @property
    def live_edge_ms(self) -> int:
        """Wall clock (epoch ms) up to which media is published."""
        assert self.spec.epoch_ms is not None
        return self.spec.epoch_ms + round(self.published_until * 1000)

    def publish_until(self, seconds: float) -> None:
        """Make media up to archive time ``seconds`` visible in the manifest."""
        seconds = min(max(seconds, self.published_until), self.spec.end_time)
        self.published_until = seconds
        self._publish(seconds, final=False)

    def finish(self) -> None:
        """Publish everything and mark the recording as ended (static MPD / ENDLIST)."""
        self.published_until = self.spec.end_time
        self.finished = True
        self._publish(None, final=True)

    def _publish(self, until: float | None, *, final: bool) -> None:
        spec = self.spec
        assert spec.epoch_ms is not None
        if self.kind == "dash":
            edge = until if until is not None else spec.end_time
            text, files = render_dash(
                spec,
                self._parts,
                layout=self.layout,
                dynamic=not final,
                until=until,
                publish_ms=spec.epoch_ms + round(edge * 1000),
            )
            files[self.manifest.name] = text.encode()
        else:
            files = render_hls(
                spec,
                self._parts,
                container=self.container,
                live=not final,
                until=until,
                name=self.manifest.name,
            )
        playlists = {rel for rel in files if rel.endswith((".mpd", ".m3u8"))}
        for rel, data in files.items():
            if rel not in playlists and rel not in self._written:
                write_atomic(self.out_dir / rel, data)
                self._written.add(rel)
        # Media playlists before the master/MPD, so everything named is already there.
        for rel in sorted(playlists, key=lambda r: r == self.manifest.name):
            write_atomic(self.out_dir / rel, files[rel])
