"""Shared by the CLI tests: run `mediaexport` in-process and read what a file shows."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from pipeline.synthetic import read_frame_index


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``mediaexport ARGV``."""
    from service.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def frames_of(path: Path) -> list[int | None]:
    """Source frame indices of every decoded frame, with MP4 edit lists ignored."""
    with av.open(str(path), options={"ignore_editlist": "1"}) as c:
        return [read_frame_index(f) for f in c.decode(video=0)]
