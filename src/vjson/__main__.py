"""``python -m vjson``: the command line (see :mod:`vjson.cli`)."""

from vjson.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
