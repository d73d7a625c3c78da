"""``python -m runner`` is the ``etlrun`` command."""

from runner._entry import entry

entry()
