"""``python -m vjson``: the command line."""

from vjson.cli import main

raise SystemExit(main())
