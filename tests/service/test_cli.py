"""What `mediaexport up` / `worker` say about their settings before anything starts."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from service.serve import _settings


def test_a_misspelt_variable_is_reported_with_the_closest_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EXPORT_MAX_TRANSCODE", "3-secret")
    settings = _settings(argparse.Namespace(port=None, data_dir=tmp_path))
    assert settings is not None  # a warning, not a refusal
    err = capsys.readouterr().err
    assert "EXPORT_MAX_TRANSCODE is not a setting" in err
    assert "did you mean EXPORT_MAX_TRANSCODES?" in err
    assert "3-secret" not in err  # values are never echoed (a misspelt one may be a key)


def test_a_bad_value_stops_start_up_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EXPORT_MAX_TRANSCODES", "many")
    assert _settings(argparse.Namespace(port=None, data_dir=tmp_path)) is None
    assert "EXPORT_MAX_TRANSCODES" in capsys.readouterr().err
