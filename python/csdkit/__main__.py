"""``python -m csdkit`` = the ``csdkit`` command."""

from .cli import main

raise SystemExit(main())
