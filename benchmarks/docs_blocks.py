"""Replace generated blocks in a Markdown file, and nothing else in it.

A generated block is the text between two HTML comments, which Markdown renders invisibly:

    <!-- generated: NAME -->
    ...
    <!-- end generated: NAME -->

`replace_blocks` swaps the text between the markers of each named block and leaves every other
byte of the file as it was. A missing or repeated marker raises ValueError before anything is
written, so a hand-edited page is never overwritten by accident.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

logger = logging.getLogger(__name__)


def begin_marker(name: str) -> str:
    return f"<!-- generated: {name} -->"


def end_marker(name: str) -> str:
    return f"<!-- end generated: {name} -->"


def _block_pattern(name: str) -> re.Pattern:
    return re.compile(re.escape(begin_marker(name)) + r"\n(.*?)" + re.escape(end_marker(name)),
                      re.DOTALL)


def replace_in_text(text: str, blocks: dict[str, str]) -> str:
    """Return `text` with the content of each block in `blocks` (name -> Markdown) replaced.

    Raises ValueError naming every block whose markers are missing or appear more than once.
    """
    problems = []
    for name in blocks:
        count = len(_block_pattern(name).findall(text))
        if count != 1:
            problems.append(f"{name!r} found {count} times")
    if problems:
        expected = ", ".join(f"{begin_marker(name)} ... {end_marker(name)}" for name in blocks)
        raise ValueError(f"Invalid generated blocks: {'; '.join(problems)}. Expected each block "
                         f"exactly once, as {expected}.")
    for name, content in blocks.items():
        body = content.rstrip("\n") + "\n"
        # A function as the replacement, so backslashes in the content stay literal.
        text = _block_pattern(name).sub(lambda _: f"{begin_marker(name)}\n{body}{end_marker(name)}",
                                        text)
    return text


def replace_blocks(path: Path, blocks: dict[str, str]) -> None:
    """Replace the named blocks in the Markdown file `path`, through a temporary file."""
    path = Path(path)
    text = replace_in_text(path.read_text(encoding="utf-8"), blocks)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    logger.info("Replaced the generated blocks %s in %s", ", ".join(blocks), path)
