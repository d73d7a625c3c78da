"""``python -m runner`` is the ``etlrun`` command."""

from runner.cli import main

raise SystemExit(main())
