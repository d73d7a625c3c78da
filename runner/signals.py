"""Clean stops on SIGINT/SIGTERM, shared by table runs and file runs."""

from __future__ import annotations

import signal
from typing import Any


class StopSignals:
    """Remember the first SIGINT/SIGTERM; the driver polls it and stops cleanly. A second signal
    interrupts at once (KeyboardInterrupt) instead of waiting for in-flight work."""

    def __init__(self) -> None:
        self.received: int | None = None

    def __enter__(self) -> StopSignals:
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def __call__(self) -> int | None:
        return self.received
