"""``mediaexport submit``: post one legacy ``/export`` body to a running service, optionally
wait for the job with a progress bar, and download its output.

The HTTP calls are service/client.py's (urllib, no Kafka client).  It prints the last
answer as one JSON line on stdout; errors go to stderr as ``mediaexport: error: ...``.  The
exit status says which class of failure it was, so a script can tell "fix the request" from
"try again later":

====  ===========================================================================================
0     done (ErrorCode 0 or 5), or accepted (ErrorCode 1) without ``--wait``
2     bad usage, or the service refused the request: ErrorCode -2 (invalid), -3 (unauthorized)
3     the job failed: ErrorCode -1 (not such dir), -5 (media), -6 (storage), -9 (internal)
4     ``--wait`` gave up after ``--timeout``: the job may still finish (its JobId is printed)
5     the service is unreachable or does not answer with the legacy contract
6     overloaded: ErrorCode -4 without ``--wait`` (with it, submit retries after TimeWait)
7     the job is done but its output could not be downloaded (``-o``)
130   Ctrl-C while waiting (an accepted job runs on in the service)
====  ===========================================================================================
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.errors import ExportError
from service.client import (
    ClientError,
    DownloadFailed,
    NoAnswerInTime,
    Service,
    atomic_file,
)

EXIT_OK = 0
EXIT_REFUSED = 2  # argparse's own status for bad usage, too
EXIT_FAILED = 3
EXIT_TIMEOUT = 4
EXIT_UNREACHABLE = 5
EXIT_OVERLOADED = 6
EXIT_DOWNLOAD = 7
EXIT_INTERRUPTED = 130  # the shell's own status for Ctrl-C

# ErrorCodes (pipeline/legacy/response.py, pipeline/errors.py) the client acts on.
THUMBNAIL_READY, WORK_NOT_FINISH, MEDIA_READY = 0, 1, 5
REFUSED = frozenset({-2, -3})
OVERLOADED = -4
# The service clamps TimeWait to 0.5..5 s; a pause outside these bounds is not its answer.
MIN_PAUSE_S, MAX_PAUSE_S = 0.2, 5.0

Progress = Callable[[dict[str, Any], float], None]


def _client_exit(error: ClientError) -> int:
    if isinstance(error, NoAnswerInTime):
        return EXIT_TIMEOUT
    return EXIT_DOWNLOAD if isinstance(error, DownloadFailed) else EXIT_UNREACHABLE


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "submit",
        help="post an export to a running service; --wait for it, -o to download the output",
        description="Post one legacy /export body. Exit status: 0 done (or accepted without "
        "--wait), 2 bad usage or refused (-2/-3), 3 job failed, 4 --timeout reached, "
        "5 service unreachable, 6 overloaded (-4), 7 download failed, 130 Ctrl-C.",
    )
    p.add_argument(
        "--server", required=True, type=server_url, help="the ingress, e.g. http://127.0.0.1:8080"
    )
    p.add_argument("--live-path", required=True, help="LivePath, e.g. mp4/demo/1/stream.mpd")
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--start-pos", type=int, help="StartPos, epoch ms")
    start.add_argument("--start-time", help="StartTime HH:MM:SS from the recording's start")
    p.add_argument("--duration", type=int, required=True, help="Duration, ms")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument(
        "--type",
        dest="export_type",
        type=int,
        choices=(0, 1, 2),
        default=0,
        help="export_type: 0 keep the codec (default), 1 H.264, 2 H.265",
    )
    kind.add_argument("--thumbnail", action="store_true", help="only the first frame (JPEG)")
    p.add_argument("--session-id", help="SessionId (when the service sets EXPORT_SESSION_IDS)")
    p.add_argument("--wait", action="store_true", help="poll until done, with a progress bar")
    p.add_argument("-o", "--output", type=Path, help="download the output here (implies --wait)")
    p.add_argument(
        "--output-url",
        help="s3://bucket/prefix of the service's outputs, for -o when the service does not "
        "serve them under /files (default: EXPORT_OUTPUT_URL)",
    )
    p.add_argument(
        "--timeout", type=float, default=600.0, help="seconds for the whole command (600)"
    )
    p.set_defaults(func=cmd_submit)


def server_url(text: str) -> str:
    """``http(s)://HOST[:PORT]``; a bare ``HOST:PORT`` means http."""
    url = text if "://" in text else f"http://{text}"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s)://HOST[:PORT] URL")
    return url.rstrip("/")


def legacy_body(args: argparse.Namespace) -> dict[str, Any]:
    """The contract's body (/work/shared/api/export-api.md) for the command's options."""
    body: dict[str, Any] = {"LivePath": args.live_path, "Duration": args.duration}
    if args.start_pos is not None:
        body["StartPos"] = args.start_pos
    else:
        body["StartTime"] = args.start_time
    if args.thumbnail:
        body.update({"FetchMedia": False, "FetchThumb": True})
    else:
        body.update({"FetchMedia": True, "export_type": args.export_type})
    if args.session_id:
        body["SessionId"] = args.session_id
    return body


def exit_status(answer: dict[str, Any], *, waited: bool) -> int:
    code = answer["ErrorCode"]
    if code in (THUMBNAIL_READY, MEDIA_READY):
        return EXIT_OK
    if code == WORK_NOT_FINISH:
        return EXIT_TIMEOUT if waited else EXIT_OK
    if code == OVERLOADED:
        return EXIT_TIMEOUT if waited else EXIT_OVERLOADED
    return EXIT_REFUSED if code in REFUSED else EXIT_FAILED


def wait_done(
    service: Service, body: dict[str, Any], answer: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """Poll until the job is final (or the deadline): GET /export/{JobId} while it runs,
    the same body again while the service is overloaded (the job does not exist yet)."""
    started = time.monotonic()
    while answer["ErrorCode"] in (WORK_NOT_FINISH, OVERLOADED):
        progress(answer, time.monotonic() - started)
        pause = min(max(answer.get("TimeWait", 0) / 1000, MIN_PAUSE_S), MAX_PAUSE_S)
        if time.monotonic() + pause >= service.deadline:
            return answer  # still running: the caller exits 4 with this last answer
        time.sleep(pause)
        job_id = answer.get("JobId")
        if answer["ErrorCode"] == WORK_NOT_FINISH and job_id:
            answer = service.poll(str(job_id))
        else:
            answer = service.post(body)
    return answer


def output_key(answer: dict[str, Any]) -> str:
    """The output's key under the service's output root, from a ready answer: VideoPath is
    ``/export/<job>/<name>``, ImagePath is relative to S3Dir (``/<job>/<name>.jpg``)."""
    if answer["ErrorCode"] == MEDIA_READY:
        return str(answer["VideoPath"]).lstrip("/")
    return f"{answer['S3Dir']}/{str(answer['ImagePath']).lstrip('/')}"


def download(service: Service, answer: dict[str, Any], dest: Path, output_url: str | None) -> None:
    """From the service's /files when it serves the outputs, else from its S3 output root."""
    key = output_key(answer)
    if service.fetch(key, dest):
        return
    from pipeline.settings import Settings
    from pipeline.storage import Blobs, OutputStore, is_s3, split_s3

    # The same variables as the service's: EXPORT_OUTPUT_URL, EXPORT_S3_ENDPOINT_URL, ...
    settings = Settings.from_env(output_url=output_url)
    if not is_s3(settings.output_url):
        raise DownloadFailed(
            f"the service does not serve {key} under /files (its outputs are in S3?): pass "
            "--output-url s3://BUCKET/PREFIX or set EXPORT_OUTPUT_URL",
            field="--output-url",
        )
    blobs = Blobs(settings.s3_endpoint_url, settings.s3_region)
    location = OutputStore(settings.output_url, blobs).location(key)
    bucket, obj = split_s3(location)

    def attempt() -> None:
        with atomic_file(dest) as f:
            blobs.s3.download_fileobj(bucket, obj, f)

    blobs.call("downloading", location, attempt)


def progress_note(answer: dict[str, Any], elapsed_s: float) -> tuple[float, str]:
    """(fraction, text after the bar): the state, an ETA from the rate so far, LackLength."""
    if answer["ErrorCode"] == OVERLOADED:
        return 0.0, f"overloaded, retrying in {answer.get('TimeWait', 0) / 1000:.0f} s"
    fraction = float(answer.get("Progress") or 0.0)
    eta = "ETA ?"
    if 0.01 <= fraction < 1.0 and elapsed_s > 0:
        eta = f"ETA {_duration(elapsed_s * (1 - fraction) / fraction)}"
    state = answer.get("State", "accepted")
    return fraction, f"{state} {eta} LackLength {answer.get('LackLength', 0)} ms"


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def cmd_submit(args: argparse.Namespace) -> int:
    from pipeline.tool import ProgressBar

    waiting = args.wait or args.output is not None
    bar = ProgressBar(label="export") if waiting and sys.stderr.isatty() else None

    def show(answer: dict[str, Any], elapsed_s: float) -> None:
        if bar is not None:
            bar(*progress_note(answer, elapsed_s))

    if args.output is not None and not args.output.parent.is_dir():
        # Before the job exists: a typo in -o must not cost a whole export first.
        print(f"mediaexport: error: no folder {args.output.parent} (field -o)", file=sys.stderr)
        return EXIT_REFUSED
    service = Service(args.server, args.session_id, time.monotonic() + args.timeout)
    body = legacy_body(args)
    try:
        answer = service.post(body)
        if waiting:
            answer = wait_done(service, body, answer, show)
    except ClientError as e:
        return _fail(e, _client_exit(e), bar)
    except KeyboardInterrupt:  # the job is the service's: it runs on without this client
        return _fail(ExportError("interrupted; an accepted job runs on"), EXIT_INTERRUPTED, bar)
    if bar is not None:
        if answer["ErrorCode"] in (THUMBNAIL_READY, MEDIA_READY):
            bar(1.0, "done")
        bar.close()
    print(json.dumps(answer, ensure_ascii=False, separators=(",", ":")), flush=True)
    status = exit_status(answer, waited=waiting)
    if status != EXIT_OK:
        _report(answer)
        return status
    return _download(service, answer, args) if args.output is not None else EXIT_OK


def _download(service: Service, answer: dict[str, Any], args: argparse.Namespace) -> int:
    try:
        download(service, answer, args.output, args.output_url)
    except ClientError as e:
        return _fail(e, _client_exit(e), None)
    except ExportError as e:  # a bad --output-url/EXPORT_* value, or S3 refusing
        status = EXIT_REFUSED if e.field and e.field.startswith("EXPORT_") else EXIT_DOWNLOAD
        return _fail(e, status, None)
    return EXIT_OK


def _report(answer: dict[str, Any]) -> None:
    code = answer["ErrorCode"]
    if code in (WORK_NOT_FINISH, OVERLOADED):  # --wait ran out of --timeout
        job = answer.get("JobId") or "the job"
        state = "overloaded" if code == OVERLOADED else answer.get("State", "running")
        print(f"mediaexport: error: {job} not finished ({state}) within --timeout", file=sys.stderr)
        return
    detail = answer.get("ErrorDetail")
    message = str(answer.get("ErrorMessage", "")) + (f": {detail}" if detail else "")
    print(f"mediaexport: error: ErrorCode {code}: {message}", file=sys.stderr)


def _fail(error: ExportError, status: int, bar: Any) -> int:
    if bar is not None:
        bar.close()
    print(f"mediaexport: error: {error}", file=sys.stderr)
    return status
