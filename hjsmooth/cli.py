"""The ``hjsmooth`` command line (also ``python -m hjsmooth``).

::

    hjsmooth demo                                    list the demos, one line each
    hjsmooth demo NAME [--out PATH] [--quick] [--seed N]
                                                     run one: write PATH (PNG) and PATH with suffix .txt
                                                     (the numbers it computed), and print those numbers
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``hjsmooth`` command."""
    parser = argparse.ArgumentParser(
        prog="hjsmooth",
        description="Smoothing non-convex loss landscapes with Hamilton-Jacobi, heat and Fokker-Planck PDEs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="list the demos, or run one and write its figure and summary",
                          description="Without NAME, list the demos. With NAME, run it.")
    demo.add_argument("name", nargs="?", metavar="NAME", help="the demo to run (omit to list them)")
    demo.add_argument("--out", type=Path, default=None, metavar="PATH",
                      help="where to write the PNG (default: NAME.png); the summary goes to PATH with suffix .txt")
    demo.add_argument("--quick", action="store_true", help="a coarse, short run (seconds)")
    demo.add_argument("--seed", type=int, default=0, metavar="N", help="seed of every random draw (default 0)")
    demo.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                      help="train only: a folder with MNIST and/or CIFAR-10 in torchvision's layout (never downloaded)")
    return parser


def _list_demos() -> str:
    from hjsmooth.demos import DEMOS

    width = max(len(name) for name in DEMOS) + 2
    lines = ["available demos (run one with: hjsmooth demo NAME --out NAME.png):"]
    for name, text in DEMOS.items():
        wrapped = textwrap.wrap(text, 100 - width - 2) or [""]
        lines.append(f"  {name:<{width}}{wrapped[0]}")
        lines.extend(" " * (width + 2) + more for more in wrapped[1:])
    return "\n".join(lines)


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
        parser.exit(2, f"hjsmooth demo: unknown demo {args.name!r}; valid demos are {', '.join(DEMOS)}\n")
    from hjsmooth.demos import get
    from hjsmooth.demos._report import summary_path

    out = args.out if args.out is not None else Path(f"{args.name}.png")
    extra = {}
    if args.data_dir is not None:
        if args.name != "train":
            parser.exit(2, f"hjsmooth demo: --data-dir is only used by the train demo, not {args.name!r}\n")
        extra["data_dir"] = args.data_dir
    try:
        numbers = get(args.name).run(out, quick=args.quick, seed=args.seed, **extra)
    except ModuleNotFoundError as exc:
        parser.exit(1, f"hjsmooth demo {args.name}: needs the package {exc.name!r}, which is not installed "
                       f"(pip install {exc.name})\n")
    print(summary_path(out).read_text(), end="")
    print(f"wrote {out} and {summary_path(out)}", file=sys.stderr)
    return 0 if numbers is not None else 1
