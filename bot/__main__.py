"""``python -m bot`` is the ``nimbys`` command."""

from bot.cli import main

raise SystemExit(main())
