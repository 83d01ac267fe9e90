"""``python -m groupconv``: the same command line as the ``groupconv`` script."""

from groupconv.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
