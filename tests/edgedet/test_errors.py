"""edgedet.errors.first_line: the one helper that turns an exception into one line of error text."""

from __future__ import annotations

from pathlib import Path

from edgedet.errors import first_line

ROOT = Path(__file__).resolve().parents[2]


def test_first_line_cuts_and_survives_empty_messages():
    assert first_line(ValueError("bad op\n  at node 3"), 200) == "bad op"
    assert first_line(ValueError("x" * 500), 120) == "x" * 120
    assert first_line(KeyError()) == "KeyError"  # str() is '': splitlines()[0] raised IndexError
    assert first_line(RuntimeError("\n\n  real cause  \nmore")) == "real cause"
    assert first_line(RuntimeError(" \n ")) == "RuntimeError"
    assert first_line("") == "" and first_line("log line\nrest", None) == "log line"


def test_no_inline_first_line_idiom_left():
    """One helper, not copies: the `str(exc).splitlines()[0]` idiom stays out of the packages."""
    files = [p for pkg in ("edgedet", "exporters") for p in (ROOT / pkg).rglob("*.py")]
    hits = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in files
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if ".splitlines()[0]" in line
    ]
    assert hits == []
