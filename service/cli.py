"""``mediaexport`` command line: offline media tools and the service entry points.

Each subcommand lives in the module that owns the behaviour; this file only wires argparse.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from pipeline import tool
    from service import client, serve, submit

    parser = argparse.ArgumentParser(
        prog="mediaexport",
        description="Frame-accurate clips and thumbnails from DASH/HLS live-recording archives.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {client.package_version()}"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    tool.add_commands(sub)  # thumb, cut, demo-archive
    serve.add_commands(sub)  # up, worker
    submit.add_commands(sub)  # submit
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
