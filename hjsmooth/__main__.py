"""``python -m hjsmooth``: the same command line as the ``hjsmooth`` console script."""

from hjsmooth.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
