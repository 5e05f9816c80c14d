"""Generated blocks of the README: a table between ``<!-- <tag>:begin -->`` and ``<!-- <tag>:end -->``
is replaced by the one computed now, so the README's numbers come from the shipped models' cards,
never from a hand-typed copy."""

from __future__ import annotations

import re
from pathlib import Path

from xad.data.transforms import DataError


def markers(tag: str) -> tuple[str, str]:
    return f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"


def replace_block(readme: str | Path, tag: str, body: str) -> Path:
    """Put ``body`` between the README's ``tag`` markers (both must be there, once)."""
    readme = Path(readme)
    text = readme.read_text()
    begin, end = markers(tag)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise DataError(f"{readme}: needs exactly one {begin} ... {end} pair to put the table between")
    block = f"{begin}\n{body.strip()}\n{end}"
    readme.write_text(re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S))
    return readme
