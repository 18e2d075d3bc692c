"""The archive every stage test reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.synthetic import write_dash
from tests.pipeline.stages.helpers import LIVE_PATH, SPEC


@pytest.fixture(scope="module")
def archive_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stage-archive")
    write_dash(root / Path(LIVE_PATH).parent, SPEC)
    return root
