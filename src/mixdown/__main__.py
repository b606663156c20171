"""``python -m mixdown``: the ``mixdown`` command, for environments without its script."""

from .cli import main

raise SystemExit(main())
