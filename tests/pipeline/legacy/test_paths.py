"""A job's output keys follow the contract's layout, and the answers write them as its
ImagePath/VideoPath (pipeline/legacy/paths.py)."""

from __future__ import annotations

import pytest

from pipeline.legacy.paths import legacy_image_path, legacy_video_path, output_keys, output_name
from pipeline.settings import Settings
from tests.pipeline.legacy.bodies import media_body, parse
from tests.pipeline.statuses import JOB


def test_output_keys_follow_the_contract() -> None:
    assert output_keys(JOB, "media", "clip.ts") == (
        f"export/{JOB}/clip.jpg",
        f"export/{JOB}/clip.ts",
    )
    assert output_keys(JOB, "media", None) == (f"export/{JOB}/{JOB}.jpg", f"export/{JOB}/{JOB}.mp4")
    assert output_keys(JOB, "thumbnail", "x.mp4") == (f"export/{JOB}/x.jpg", None)
    assert legacy_image_path(f"export/{JOB}/x.jpg") == f"/{JOB}/x.jpg"
    assert legacy_video_path(f"export/{JOB}/x.mp4") == f"/export/{JOB}/x.mp4"


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("04-60C262253621833_0.0993375889", ("04-60C262253621833_0.0993375889", ".mp4")),
        ("a b:c*d?.MP4", ("a_b_c_d", ".mp4")),
        ("..", (JOB, ".mp4")),
        ("/abs/path/x.ts", ("abs_path_x", ".ts")),
        ("y" * 400, ("y" * 150, ".mp4")),
    ],
)
def test_output_name(file_name: str, expected: tuple[str, str]) -> None:
    assert output_name(file_name, JOB) == expected


@pytest.mark.parametrize(
    ("file_name", "name", "ext"),
    [
        ("clip.mp4", "clip", ".mp4"),
        ("clip.TS", "clip", ".ts"),
        ("news 2024/05.ts", "news_2024_05", ".ts"),
        ("../../etc/passwd", "etc_passwd", ".mp4"),
        ("新闻片段.mp4", "新闻片段", ".mp4"),
        (".mp4", None, ".mp4"),
        ("", None, ".mp4"),
    ],
)
def test_file_name_is_sanitised_into_the_job_folder(
    settings: Settings, file_name: str, name: str | None, ext: str
) -> None:
    req = parse(media_body(FileName=file_name), settings)
    stem = name or req.job_id
    assert req.video_key == f"export/{req.job_id}/{stem}{ext}"
    assert req.image_key == f"export/{req.job_id}/{stem}.jpg"
    assert ".." not in req.video_key.split("/")
