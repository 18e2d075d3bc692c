"""TLS/SASL settings → the connection options of faust and of the ingress's aiokafka consumer."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from pipeline.errors import InvalidRequest
from pipeline.settings import Settings
from service.app import create_pipeline
from service.kafka_auth import client_options, faust_credentials

PASSWORD = "s3cr3t-9F2C1B7E"  # a value that must never show up in a message or summary
CAFILE = Path(pytest.importorskip("certifi").where())  # a real PEM bundle of CAs


def _settings(**env: str) -> Settings:
    return Settings.from_env({f"EXPORT_{k.upper()}": v for k, v in env.items()})


def _comparable(options: dict[str, Any]) -> dict[str, Any]:
    """Options with the SSL context replaced by what it checks (two calls, two contexts)."""
    out = dict(options)
    context = out.pop("ssl_context", None)
    if context is not None:
        out["ssl"] = (context.verify_mode, context.check_hostname)
    return out


def test_plaintext_by_default_and_faust_gets_no_credentials() -> None:
    s = Settings.from_env({})
    assert client_options(s) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(s) is None
    assert credentials_to_aiokafka_auth(faust_credentials(s)) == client_options(s)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_verifies_the_brokers_and_faust_connects_exactly_like_aiokafka(
    mechanism: str,
) -> None:
    s = _settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="mediaexport",
        kafka_sasl_password=PASSWORD,
        kafka_ssl_cafile=str(CAFILE),
    )
    options = client_options(s)
    assert _comparable(options) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "mediaexport",
        "sasl_plain_password": PASSWORD,
        "ssl": (ssl.CERT_REQUIRED, True),
    }
    via_faust = credentials_to_aiokafka_auth(faust_credentials(s))
    assert _comparable(dict(via_faust)) == _comparable(options)


def test_sasl_plaintext_sends_no_tls_and_ssl_alone_sends_no_credentials() -> None:
    sasl = _settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="u",
        kafka_sasl_password=PASSWORD,
    )
    assert "ssl_context" not in client_options(sasl)
    assert dict(credentials_to_aiokafka_auth(faust_credentials(sasl))) == {
        **client_options(sasl),
        "ssl_context": None,  # faust always names the key; aiokafka's default is None too
    }
    tls = _settings(kafka_security_protocol="SSL")  # system CAs: what managed Kafka uses
    assert _comparable(client_options(tls)) == {
        "security_protocol": "SSL",
        "ssl": (ssl.CERT_REQUIRED, True),
    }
    assert _comparable(dict(credentials_to_aiokafka_auth(faust_credentials(tls)))) == (
        _comparable(client_options(tls))
    )


def test_the_password_file_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    s = _settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="u",
        kafka_sasl_password_file=str(secret),
    )
    assert client_options(s)["sasl_plain_password"] == PASSWORD


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_password": PASSWORD}, "USERNAME"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u"}, "PASSWORD"),
        ({"kafka_sasl_username": "u", "kafka_sasl_password": PASSWORD}, "PROTOCOL"),
        ({"kafka_ssl_cafile": str(CAFILE)}, "PROTOCOL"),
        (
            {
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_username": "u",
                "kafka_sasl_password": PASSWORD,
                "kafka_sasl_password_file": str(CAFILE),
            },
            "PASSWORD_FILE",
        ),
    ],
)
def test_an_incomplete_or_contradictory_setup_stops_start_up_naming_the_variable(
    env: dict[str, str], field: str
) -> None:
    s = _settings(**env)
    with pytest.raises(InvalidRequest) as info:
        client_options(s)
    assert info.value.field is not None and info.value.field.endswith(field)
    assert PASSWORD not in str(info.value)
    with pytest.raises(InvalidRequest):
        create_pipeline(s, "127.0.0.1:9092", agents=False)  # the App is built at start-up


def test_a_file_that_is_not_a_ca_bundle_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(InvalidRequest) as info:
        client_options(_settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(bogus)))
    assert info.value.field == "EXPORT_KAFKA_SSL_CAFILE"


def test_the_password_never_shows_in_repr_summary_or_a_parse_error() -> None:
    s = _settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_username="u", kafka_sasl_password=PASSWORD
    )
    assert PASSWORD not in repr(s)
    summary = s.summary()
    assert PASSWORD not in str(summary)
    assert summary["kafka_sasl_password"] == "set"
    assert summary["kafka_sasl_username"] == "u"
    assert Settings.from_env({}).summary()["kafka_sasl_password"] == "unset"
    assert PASSWORD not in repr(faust_credentials(s))  # faust's repr names the user only
    with pytest.raises(InvalidRequest) as info:
        Settings.from_env({"EXPORT_KAFKA_SASL_PASSWORD": PASSWORD + "\x07"})
    assert info.value.field == "EXPORT_KAFKA_SASL_PASSWORD"
    assert PASSWORD not in str(info.value)


def test_the_app_gets_the_credentials_and_the_replication_factor(tmp_path: Path) -> None:
    s = _settings(
        data_dir=str(tmp_path),
        replication_factor="3",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="u",
        kafka_sasl_password=PASSWORD,
    )
    pipe = create_pipeline(s, "127.0.0.1:9092", agents=False)
    conf = pipe.app.conf
    assert conf.topic_replication_factor == 3  # topics and table changelogs declare with it
    assert all(t.replicas is None for t in pipe.topics.values())  # none overrides it
    auth = credentials_to_aiokafka_auth(conf.broker_credentials)
    assert auth["sasl_mechanism"] == "SCRAM-SHA-256"
    assert auth["sasl_plain_password"] == PASSWORD


def test_every_kafka_security_variable_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)
    s = _settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="mediaexport",
        kafka_sasl_password_file=str(secret),
        kafka_ssl_cafile=str(CAFILE),
        replication_factor="3",
    )
    assert (s.kafka_security_protocol, s.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (s.kafka_sasl_username, s.kafka_sasl_password) == ("mediaexport", None)
    assert (s.kafka_sasl_password_file, s.kafka_ssl_cafile) == (secret, CAFILE)
    assert s.replication_factor == 3
    defaults = Settings.from_env({})
    assert (defaults.kafka_security_protocol, defaults.kafka_sasl_mechanism) == (
        "PLAINTEXT",
        "PLAIN",
    )
    assert defaults.replication_factor == 1
