"""GitHub Actions workflow commands: ``::error file=F,line=L,col=C::message`` annotations.

``validate --format github`` and ``check --format github`` print them, so CI shows each problem on
the spec line it belongs to. See "Workflow commands for GitHub Actions" in GitHub's docs for the
escaping rules (``%``, CR and LF everywhere; ``:`` and ``,`` in properties too).
"""

from __future__ import annotations

from runner.secrets import scrub


def annotation(level: str, file: str, line: int, col: int | None, message: str) -> str:
    """One workflow command; ``level`` is error, warning or notice. The message is scrubbed.

    Example:
        >>> annotation("error", "jobs/a,b.yaml", 3, 5, "50% off\\nsecond line")
        '::error file=jobs/a%2Cb.yaml,line=3,col=5::50%25 off%0Asecond line'
    """

    def escape(text: str, prop: bool = False) -> str:
        text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return text.replace(":", "%3A").replace(",", "%2C") if prop else text

    where = f"file={escape(file, True)},line={line}" + (f",col={col}" if col else "")
    return f"::{level} {where}::{escape(scrub(message))}"
