"""The ``hjsmooth`` command line (also ``python -m hjsmooth``).

::

    hjsmooth demo                                    list the demos, one line each
    hjsmooth demo NAME [--out PATH] [--quick] [--seed N]
                                                     run one: write PATH (PNG) and PATH with suffix .txt
                                                     (the numbers it computed), and print those numbers

Every argument is checked before the demo computes anything: the output files are created (and
removed again) so that a path the system refuses fails at once, not after the computation.  A user
error (a bad seed, an output path that cannot be written or is not a .png, an unknown demo or
option) prints one line, ``hjsmooth: error: ...``, and exits with status 2; no traceback, no file
written.  A demo whose optional packages are missing (torch, scikit-learn, mnist1d) stops before it
starts with status 1 and the command that installs them.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``hjsmooth: error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"hjsmooth: error: {message} (see: {self.prog} --help)\n")


def _seed(text: str) -> int:
    """``--seed``: an integer in [0, 2**63)."""
    from hjsmooth.validation import check_seed

    try:
        return check_seed(int(text), "seed")
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**63), got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``hjsmooth`` command."""
    parser = _Parser(
        prog="hjsmooth",
        description="Smoothing non-convex loss landscapes with Hamilton-Jacobi, heat and Fokker-Planck PDEs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    demo = sub.add_parser(
        "demo",
        help="list the demos, or run one and write its figure and summary",
        description="Without NAME, list the demos. With NAME, run it.",
    )
    demo.add_argument("name", nargs="?", metavar="NAME", help="the demo to run (omit to list them)")
    demo.add_argument(
        "--out",
        type=str,
        default=None,
        metavar="PATH",
        help="where to write the PNG, a file name ending in .png (default: NAME.png); the summary "
        "goes to PATH with suffix .txt",
    )
    demo.add_argument("--quick", action="store_true", help="a coarse, short run (seconds)")
    demo.add_argument(
        "--seed", type=_seed, default=0, metavar="N", help="seed of every random draw, an integer >= 0 (default 0)"
    )
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="train only: a folder with MNIST and/or CIFAR-10 in torchvision's layout (never downloaded)",
    )
    return parser


def _list_demos() -> str:
    from hjsmooth.demos import DEMOS, DISTRIBUTIONS, REQUIRES

    width = max(len(name) for name in DEMOS) + 2
    lines = ["available demos (run one with: hjsmooth demo NAME --out NAME.png):"]
    for name, text in DEMOS.items():
        needs = [DISTRIBUTIONS.get(package, package) for package in REQUIRES.get(name, ())]
        if needs:
            text = f"{text} [needs {', '.join(needs)}]"
        wrapped = textwrap.wrap(text, 100 - width - 2) or [""]
        lines.append(f"  {name:<{width}}{wrapped[0]}")
        lines.extend(" " * (width + 2) + more for more in wrapped[1:])
    return "\n".join(lines)


def _output_paths(parser: argparse.ArgumentParser, name: str, out: str | None) -> Path:
    """``--out`` (default ``NAME.png``) after checking that it and its summary can be written."""
    from hjsmooth.demos._report import summary_path
    from hjsmooth.validation import check_output_path, probe_output_file

    text = f"{name}.png" if out is None else out
    try:
        path = check_output_path(text, "--out")
        check_output_path(summary_path(path), "--out (its summary)", suffixes=(".txt",))
        probe_output_file(path, "--out")
        probe_output_file(summary_path(path), "--out (its summary)")
    except (TypeError, ValueError) as exc:
        parser.error(str(exc).replace("`", ""))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from hjsmooth.demos import DEMOS

    if args.name is None:
        print(_list_demos())
        return 0
    if args.name not in DEMOS:
        parser.error(f"unknown demo {args.name!r}; valid demos are {', '.join(DEMOS)}")
    extra = {}
    if args.data_dir is not None:
        if args.name != "train":
            parser.error(f"--data-dir is only used by the train demo, not {args.name!r}")
        if not args.data_dir.is_dir():
            parser.error(f"--data-dir {str(args.data_dir)!r} is not a directory")
        extra["data_dir"] = args.data_dir
    out = _output_paths(parser, args.name, args.out)
    from hjsmooth.demos import check_requirements, get, install_hint
    from hjsmooth.demos._report import summary_path

    try:
        check_requirements(args.name)
    except ModuleNotFoundError as exc:
        parser.exit(1, f"hjsmooth: error: {exc}\n")
    try:
        numbers = get(args.name).run(out, quick=args.quick, seed=args.seed, **extra)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "hjsmooth":
            raise
        package = exc.name.split(".")[0]
        parser.exit(
            1,
            f"hjsmooth: error: the {args.name} demo needs the package {package!r}, which is not "
            f"installed ({install_hint(package)})\n",
        )
    print(summary_path(out).read_text(), end="")
    print(f"wrote {out} and {summary_path(out)}", file=sys.stderr)
    return 0 if numbers is not None else 1
