"""How every Kafka client of this process connects: TLS and SASL from the settings.

One function, :func:`client_options`, turns the ``EXPORT_KAFKA_SECURITY_PROTOCOL``,
``..._SASL_*`` and ``..._SSL_CAFILE`` settings into aiokafka's connection keywords; the
ingress's own consumer (ingress/replica.py) takes them as they are, and faust gets the same
options as the credentials object it translates back into them
(:func:`faust_credentials`, checked against faust's own translation in
tests/service/test_kafka_auth.py), so the two can never connect differently.

The password is read here, at start-up, from ``EXPORT_KAFKA_SASL_PASSWORD`` or from the file
``EXPORT_KAFKA_SASL_PASSWORD_FILE`` names (a mounted Docker/Kubernetes secret).  It is never
put in a message: errors name the variable, never the value.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

import faust.auth

from pipeline.errors import InvalidRequest

if TYPE_CHECKING:
    from pipeline.settings import Settings

SASL = ("SASL_PLAINTEXT", "SASL_SSL")
TLS = ("SSL", "SASL_SSL")
PROTOCOL_VAR = "EXPORT_KAFKA_SECURITY_PROTOCOL"
PASSWORD_VAR = "EXPORT_KAFKA_SASL_PASSWORD"
PASSWORD_FILE_VAR = "EXPORT_KAFKA_SASL_PASSWORD_FILE"


def client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka's connection keywords (``security_protocol``, ``ssl_context``, ``sasl_*``)."""
    protocol = settings.kafka_security_protocol
    _check_unused(settings, protocol)
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in TLS:
        options["ssl_context"] = ssl_context(settings)
    if protocol in SASL:
        if not settings.kafka_sasl_username:
            raise InvalidRequest(
                f"{PROTOCOL_VAR}={protocol} needs EXPORT_KAFKA_SASL_USERNAME",
                field="EXPORT_KAFKA_SASL_USERNAME",
            )
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=sasl_password(settings),
        )
    return options


def faust_credentials(settings: Settings) -> faust.auth.Credentials | None:
    """The same options as faust's ``broker_credentials`` (None: plaintext)."""
    options = client_options(settings)
    if "sasl_mechanism" in options:
        # faust derives SASL_SSL from the presence of a context, SASL_PLAINTEXT from its absence
        return faust.auth.SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            ssl_context=options.get("ssl_context"),
            mechanism=options["sasl_mechanism"],
        )
    if "ssl_context" in options:
        return faust.auth.SSLCredentials(options["ssl_context"])
    return None


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verify the brokers' certificates and host names against the CA file, or the system's
    CAs when none is set (managed services use public CAs)."""
    cafile = settings.kafka_ssl_cafile
    try:
        return ssl.create_default_context(cafile=str(cafile) if cafile else None)
    except (ssl.SSLError, OSError) as e:
        raise InvalidRequest(
            f"EXPORT_KAFKA_SSL_CAFILE={str(cafile)!r} is not a PEM file of CA certificates: {e}",
            field="EXPORT_KAFKA_SSL_CAFILE",
        ) from e


def sasl_password(settings: Settings) -> str:
    """The SASL password from the environment or from its file (one of them, not both)."""
    path = settings.kafka_sasl_password_file
    if path is not None and settings.kafka_sasl_password is not None:
        raise InvalidRequest(
            f"set {PASSWORD_VAR} or {PASSWORD_FILE_VAR}, not both", field=PASSWORD_FILE_VAR
        )
    if path is None:
        if settings.kafka_sasl_password is None:
            raise InvalidRequest(
                f"{PROTOCOL_VAR}={settings.kafka_security_protocol} needs {PASSWORD_VAR} or "
                f"{PASSWORD_FILE_VAR}",
                field=PASSWORD_VAR,
            )
        return settings.kafka_sasl_password
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        # the exception's text names the file, never its content
        raise InvalidRequest(
            f"{PASSWORD_FILE_VAR}: cannot read {str(path)!r}: {type(e).__name__}",
            field=PASSWORD_FILE_VAR,
        ) from None
    # a secret file written with `echo` ends with a newline that is not part of the password
    password = text.removesuffix("\n").removesuffix("\r")
    if not password:
        raise InvalidRequest(
            f"{PASSWORD_FILE_VAR}: {str(path)!r} is empty", field=PASSWORD_FILE_VAR
        )
    return password


def _check_unused(settings: Settings, protocol: str) -> None:
    """Credentials given for a protocol that would not send them are a mistake worth a stop:
    a plaintext connection to a cluster that needs them fails later with a vaguer error."""
    given = [
        var
        for var, value in (
            ("EXPORT_KAFKA_SASL_USERNAME", settings.kafka_sasl_username),
            (PASSWORD_VAR, settings.kafka_sasl_password),
            (PASSWORD_FILE_VAR, settings.kafka_sasl_password_file),
        )
        if value is not None
    ]
    if given and protocol not in SASL:
        raise InvalidRequest(
            f"{', '.join(given)} set, but {PROTOCOL_VAR}={protocol} does not use SASL "
            "(use SASL_SSL or SASL_PLAINTEXT)",
            field=PROTOCOL_VAR,
        )
    if settings.kafka_ssl_cafile is not None and protocol not in TLS:
        raise InvalidRequest(
            f"EXPORT_KAFKA_SSL_CAFILE set, but {PROTOCOL_VAR}={protocol} does not use TLS "
            "(use SSL or SASL_SSL)",
            field=PROTOCOL_VAR,
        )
