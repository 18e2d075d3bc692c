"""``mediaexport`` command line: offline media tools and the service entry points.

Each subcommand lives in the module that owns the behaviour; this file only wires argparse.
An offline command (``thumb``, ``cut``, ``demo-archive``) registers only those: the service
commands' modules pull in asyncio, http.client and urllib, a tenth of a second of a
thumbnail process that ffmpeg does not pay.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

OFFLINE_COMMANDS = frozenset({"thumb", "cut", "demo-archive"})


class _Version(argparse.Action):
    """``--version``, with the package metadata read only when it is asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from service.client import package_version

        print(f"{parser.prog} {package_version()}")
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with an offline ``command`` only the offline subcommands."""
    from pipeline import tool

    parser = argparse.ArgumentParser(
        prog="mediaexport",
        description="Frame-accurate clips and thumbnails from DASH/HLS live-recording archives.",
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True)
    tool.add_commands(sub)  # thumb, cut, demo-archive
    if command not in OFFLINE_COMMANDS:
        from service import serve, submit

        serve.add_commands(sub)  # up, worker
        submit.add_commands(sub)  # submit
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; ``argv`` None means this process's own command line.

    An offline command run as the process (``argv`` None) ends the process itself once its
    output is flushed: tearing down the interpreter (module globals, PyAV's codecs and
    frame-thread pools) took 15-25 ms of a ~250 ms ``mediaexport thumb``, and the command
    has nothing left to clean up (its files are written and closed, no thread runs)."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(args_in[0] if args_in else None).parse_args(args_in)
    result: int = args.func(args)
    if argv is None and args.command in OFFLINE_COMMANDS:
        _hard_exit(result)
    return result


def _hard_exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
