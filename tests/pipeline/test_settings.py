from __future__ import annotations

import dataclasses
import os
import re
import socket
from pathlib import Path

import pytest

from pipeline.errors import InvalidRequest
from pipeline.media.options import EncodeOptions
from pipeline.settings import ENV_VARS, SETTINGS, Settings

SECRET = "2A39603DDB0F47CFB32E96C8366084AE"


def test_defaults_from_an_empty_environment() -> None:
    s = Settings.from_env({})
    assert s.kafka_bootstrap is None
    assert (s.http_host, s.http_port) == ("127.0.0.1", 8080)
    assert s.data_dir == Path("./var")
    assert s.archive_url == os.path.join("var", "archive")
    assert s.output_url == os.path.join("var", "exports")
    assert s.s3_endpoint_url is None and s.s3_region is None
    assert s.allowed_buckets is None
    assert (s.max_transcodes, s.max_frame_grabs, s.partitions) == (2, 4, 4)
    assert s.cache_mb == 256
    assert (s.sync_wait_ms, s.live_wait_ms) == (5000, 60000)
    assert s.session_ids is None and s.auth_open
    assert s.tansu_bin is None and s.kafka_port is None
    assert s.worker_id == f"{socket.gethostname()}-{os.getpid()}"
    assert s.encode == EncodeOptions()
    assert (s.max_pending, s.job_ttl_ms, s.drain_timeout_ms) == (200, 86_400_000, 60_000)


def test_every_variable_is_read(tmp_path: Path) -> None:
    tansu = tmp_path / "tansu"
    tansu.write_text("#!/bin/sh\n")
    tansu.chmod(0o755)
    secret_file = tmp_path / "sasl-password"
    secret_file.write_text("from-file\n")
    env = {
        "EXPORT_KAFKA_BOOTSTRAP": "kafka-1:9092, kafka-2:9092",
        "EXPORT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "EXPORT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "EXPORT_KAFKA_SASL_USERNAME": "mediaexport",
        "EXPORT_KAFKA_SASL_PASSWORD": SECRET,
        "EXPORT_KAFKA_SASL_PASSWORD_FILE": str(secret_file),
        "EXPORT_KAFKA_SSL_CAFILE": str(secret_file),  # only its readability is checked here
        "EXPORT_HTTP_HOST": "0.0.0.0",
        "EXPORT_HTTP_PORT": "9000",
        "EXPORT_DATA_DIR": str(tmp_path / "data"),
        "EXPORT_ARCHIVE_URL": "s3://archive-bucket/live/",
        "EXPORT_OUTPUT_URL": "s3://out-bucket/clips",
        "EXPORT_S3_ENDPOINT_URL": "http://127.0.0.1:9000/",
        "EXPORT_S3_REGION": "us-west-1",
        "EXPORT_ALLOWED_BUCKETS": "mma-video-archive, archive-bucket,",
        "EXPORT_MAX_TRANSCODES": "3",
        "EXPORT_SPLIT_SECONDS": "45",
        "EXPORT_MAX_FRAME_GRABS": "8",
        "EXPORT_CACHE_MB": "64",
        "EXPORT_SYNC_WAIT_MS": "0",
        "EXPORT_LIVE_WAIT_MS": "15000",
        "EXPORT_SESSION_IDS": f"{SECRET}, other-id",
        "EXPORT_PARTITIONS": "6",
        "EXPORT_REPLICATION_FACTOR": "3",
        "EXPORT_TANSU_BIN": str(tansu),
        "EXPORT_KAFKA_PORT": "19092",
        "EXPORT_WORKER_ID": "worker-7",
        "EXPORT_LOG_FORMAT": "json",
        "EXPORT_H264_PRESET": "fast",
        "EXPORT_EDGE_H264_PRESET": "veryfast",
        "EXPORT_H264_CRF": "18",
        "EXPORT_H265_PRESET": "medium",
        "EXPORT_H265_CRF": "28",
        "EXPORT_AUDIO_BITRATE": "96000",
        "EXPORT_ENCODE_THREADS": "2",
        "EXPORT_MAX_PENDING": "50",
        "EXPORT_JOB_TTL_MS": "3600000",
        "EXPORT_DRAIN_TIMEOUT_MS": "0",
        "EXPORT_STAGE_TIMEOUT_MS": "30000",
        "EXPORT_KAFKA_FETCH_MAX_WAIT_MS": "20",
        "EXPORT_LOCAL_DELIVERY": "off",
    }
    assert set(env) == ENV_VARS  # the test covers every variable the settings read
    s = Settings.from_env(env)
    assert s.kafka_bootstrap == "kafka-1:9092,kafka-2:9092"
    assert (s.http_host, s.http_port) == ("0.0.0.0", 9000)
    assert s.data_dir == tmp_path / "data"
    assert s.archive_url == "s3://archive-bucket/live"
    assert s.output_url == "s3://out-bucket/clips"
    assert s.s3_endpoint_url == "http://127.0.0.1:9000"
    assert s.s3_region == "us-west-1"
    assert s.allowed_buckets == frozenset({"mma-video-archive", "archive-bucket"})
    assert (s.max_transcodes, s.max_frame_grabs, s.partitions) == (3, 8, 6)
    assert s.cache_mb == 64
    assert s.split_seconds == 45
    assert (s.sync_wait_ms, s.live_wait_ms) == (0, 15000)
    assert s.session_ids == frozenset({SECRET, "other-id"}) and not s.auth_open
    assert (s.tansu_bin, s.kafka_port) == (str(tansu), 19092)
    assert s.worker_id == "worker-7"
    assert s.log_format == "json"
    assert s.encode == EncodeOptions(
        h264_preset="fast",
        edge_h264_preset="veryfast",
        h264_crf=18,
        h265_preset="medium",
        h265_crf=28,
        audio_bitrate=96000,
        threads=2,
    )
    assert (s.max_pending, s.job_ttl_ms, s.drain_timeout_ms) == (50, 3_600_000, 0)
    assert (s.stage_timeout_ms, s.kafka_fetch_max_wait_ms) == (30_000, 20)
    assert s.local_delivery == "off"


def test_archive_and_output_default_under_the_data_dir(tmp_path: Path) -> None:
    s = Settings.from_env({"EXPORT_DATA_DIR": str(tmp_path)})
    assert s.archive_url == str(tmp_path / "archive")
    assert s.output_url == str(tmp_path / "exports")
    explicit = Settings.from_env(
        {"EXPORT_DATA_DIR": str(tmp_path), "EXPORT_ARCHIVE_URL": "/srv/archive"}
    )
    assert explicit.archive_url == "/srv/archive"
    assert explicit.output_url == str(tmp_path / "exports")


def test_empty_values_count_as_unset() -> None:
    s = Settings.from_env({"EXPORT_KAFKA_BOOTSTRAP": "", "EXPORT_HTTP_PORT": "  "})
    assert s.kafka_bootstrap is None and s.http_port == 8080


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("EXPORT_HTTP_PORT", "abc"),
        ("EXPORT_HTTP_PORT", "0"),
        ("EXPORT_HTTP_PORT", "65536"),
        ("EXPORT_HTTP_PORT", "80.5"),
        ("EXPORT_HTTP_PORT", "1e3"),
        ("EXPORT_HTTP_PORT", "8_080"),
        ("EXPORT_MAX_TRANSCODES", "0"),
        ("EXPORT_MAX_TRANSCODES", "two"),
        ("EXPORT_SPLIT_SECONDS", "-1"),
        ("EXPORT_SPLIT_SECONDS", "86401"),
        ("EXPORT_MAX_FRAME_GRABS", "-3"),
        ("EXPORT_CACHE_MB", "-1"),
        ("EXPORT_SYNC_WAIT_MS", "-1"),
        ("EXPORT_SYNC_WAIT_MS", "5s"),
        ("EXPORT_LIVE_WAIT_MS", "forever"),
        ("EXPORT_PARTITIONS", "0"),
        ("EXPORT_KAFKA_BOOTSTRAP", "localhost"),
        ("EXPORT_KAFKA_BOOTSTRAP", "localhost:port"),
        ("EXPORT_KAFKA_BOOTSTRAP", "a:9092,b:99999"),
        ("EXPORT_HTTP_HOST", "bad host"),
        ("EXPORT_DATA_DIR", "s3://bucket/data"),
        ("EXPORT_ARCHIVE_URL", "http://example.com/archive"),
        ("EXPORT_ARCHIVE_URL", "s3://"),
        ("EXPORT_ARCHIVE_URL", "s3://bucket/a/../b"),
        ("EXPORT_OUTPUT_URL", "ftp://host/out"),
        ("EXPORT_S3_ENDPOINT_URL", "localhost:9000"),
        ("EXPORT_S3_ENDPOINT_URL", "http://host:0"),
        ("EXPORT_S3_REGION", "US West 1"),
        ("EXPORT_ALLOWED_BUCKETS", " , "),
        ("EXPORT_ALLOWED_BUCKETS", "good-bucket,bad/bucket"),
        ("EXPORT_H264_PRESET", "superslow"),
        ("EXPORT_EDGE_H264_PRESET", "quick"),
        ("EXPORT_H265_PRESET", "VERYFAST"),
        ("EXPORT_H264_CRF", "52"),
        ("EXPORT_H265_CRF", "-1"),
        ("EXPORT_AUDIO_BITRATE", "1"),
        ("EXPORT_ENCODE_THREADS", "auto"),
        ("EXPORT_TANSU_BIN", "/nonexistent/tansu"),
        ("EXPORT_WORKER_ID", "has space"),
        ("EXPORT_MAX_PENDING", "0"),
        ("EXPORT_MAX_PENDING", "many"),
        ("EXPORT_JOB_TTL_MS", "1000"),
        ("EXPORT_JOB_TTL_MS", "24h"),
        ("EXPORT_DRAIN_TIMEOUT_MS", "-5"),
        ("EXPORT_DRAIN_TIMEOUT_MS", "60s"),
        ("EXPORT_STAGE_TIMEOUT_MS", "10"),
        ("EXPORT_REPLICATION_FACTOR", "0"),
        ("EXPORT_KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("EXPORT_KAFKA_SASL_MECHANISM", "GSSAPI"),
        ("EXPORT_KAFKA_SASL_USERNAME", "two\nlines"),
        ("EXPORT_KAFKA_SASL_PASSWORD_FILE", "/nonexistent/password"),
        ("EXPORT_KAFKA_SSL_CAFILE", "/nonexistent/ca.pem"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_value(var: str, value: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        Settings.from_env({var: value})
    assert info.value.field == var
    assert var in info.value.message
    assert repr(value.strip()) in info.value.message


def test_a_file_that_is_not_executable_is_not_a_tansu_binary(tmp_path: Path) -> None:
    plain = tmp_path / "tansu"
    plain.write_text("not a program")
    plain.chmod(0o644)
    with pytest.raises(InvalidRequest) as info:
        Settings.from_env({"EXPORT_TANSU_BIN": str(plain)})
    assert info.value.field == "EXPORT_TANSU_BIN"


def test_a_bad_session_id_is_reported_without_its_value() -> None:
    with pytest.raises(InvalidRequest) as info:
        Settings.from_env({"EXPORT_SESSION_IDS": f"{SECRET},bad id with spaces"})
    assert info.value.field == "EXPORT_SESSION_IDS"
    assert "EXPORT_SESSION_IDS" in info.value.message and "entry 2" in info.value.message
    assert "bad id" not in str(info.value) and SECRET not in str(info.value)


def test_session_ids_never_appear_in_repr_or_summary() -> None:
    s = Settings.from_env({"EXPORT_SESSION_IDS": SECRET})
    assert SECRET not in repr(s)
    summary = s.summary()
    assert SECRET not in str(summary)
    assert summary["session_ids"] == "1 configured"
    assert Settings.from_env({}).summary()["session_ids"] == "open (not checked)"
    assert summary["http_port"] == 8080 and summary["data_dir"] == "var"


def test_overrides_win_over_the_environment_and_none_means_not_given(tmp_path: Path) -> None:
    env = {"EXPORT_HTTP_PORT": "9000", "EXPORT_DATA_DIR": "/elsewhere"}
    s = Settings.from_env(env, http_port=9100, data_dir=tmp_path, kafka_bootstrap=None)
    assert s.http_port == 9100
    assert s.data_dir == tmp_path
    assert s.archive_url == str(tmp_path / "archive")  # derived from the overridden data dir
    assert s.kafka_bootstrap is None
    s = Settings.from_env({}, allowed_buckets={"b-one", "b-two"}, session_ids=["x1"])
    assert s.allowed_buckets == frozenset({"b-one", "b-two"})
    assert s.session_ids == frozenset({"x1"})
    opts = EncodeOptions(h264_crf=30)
    assert Settings.from_env({}, encode=opts).encode is opts


def test_overrides_are_validated_like_the_environment() -> None:
    with pytest.raises(InvalidRequest) as info:
        Settings.from_env({}, http_port=0)
    assert info.value.field == "EXPORT_HTTP_PORT"
    assert "http_port" in info.value.message and "'0'" in info.value.message
    with pytest.raises(TypeError):
        Settings.from_env({}, no_such_setting=1)
    with pytest.raises(TypeError):
        Settings.from_env({}, encode={"h264_crf": 1})


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EXPORT_HTTP_PORT", "8181")
    assert Settings.from_env().http_port == 8181
    monkeypatch.setenv("EXPORT_MAX_TRANSCODES", "0")
    with pytest.raises(InvalidRequest, match="EXPORT_MAX_TRANSCODES"):
        Settings.from_env()


def test_a_misspelt_variable_is_reported_with_the_setting_it_likely_meant() -> None:
    env = {
        "EXPORT_MAX_TRANSCODE": "3",
        "EXPORT_HTTP_PORT": "1",
        "EXPORT_TEST_DOCKER": "1",
        "EXPORT_SESION_IDS": SECRET,
        "EXPORT_NOTHING_LIKE_IT": "1",
        "X": "1",
    }
    warnings = Settings.unknown_variables(env)
    assert warnings == [
        "EXPORT_MAX_TRANSCODE is not a setting and is ignored; did you mean EXPORT_MAX_TRANSCODES?",
        "EXPORT_NOTHING_LIKE_IT is not a setting and is ignored; see the README's settings",
        "EXPORT_SESION_IDS is not a setting and is ignored; did you mean EXPORT_SESSION_IDS?",
    ]
    assert SECRET not in str(warnings)  # a misspelt credential variable is not echoed
    assert Settings.unknown_variables({var: "1" for var in ENV_VARS}) == []


def _readme_configuration() -> list[tuple[str, str, str]]:
    """(variable, default cell, meaning cell) of each row of the README's settings table."""
    text = (Path(__file__).parents[2] / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        m = re.fullmatch(r"\| `(EXPORT_\w+)` \| (.*?) \| (.*) \|", line)
        if m:
            rows.append((m[1], m[2], m[3]))
    return rows


def test_every_setting_is_in_the_readme_with_its_default_and_meaning() -> None:
    documented = {var: (default, meaning) for var, default, meaning in _readme_configuration()}
    for setting in SETTINGS:
        assert setting.var in documented, f"{setting.var} is not in the README's table"
        default, meaning = documented[setting.var]
        assert default == setting.documented_default, setting.var
        assert meaning == setting.doc, f"{setting.var}: the README and settings.py differ"


def test_every_variable_in_the_readme_is_a_setting_in_the_table_order() -> None:
    documented = [var for var, _, _ in _readme_configuration()]
    assert documented == [s.var for s in SETTINGS]  # no unknown, missing or repeated row
    assert set(documented) == ENV_VARS


def test_an_unset_variable_leaves_the_documented_default() -> None:
    s = Settings.from_env({})
    for setting in SETTINGS:
        value = getattr(s.encode if setting.encode else s, setting.field)
        if setting.shown is None:  # derived ones: see test_defaults_from_an_empty_environment
            assert value == setting.default, setting.var


def test_settings_are_frozen_and_constructible_directly(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, worker_id="w1")
    assert s.archive_url == str(tmp_path / "archive")
    assert re.fullmatch(r"w1", s.worker_id)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.http_port = 1  # type: ignore[misc]
