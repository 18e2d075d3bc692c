from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, worker_id="test")
