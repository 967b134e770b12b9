"""The README's layout names every module and package of ``udpt/``, and nothing that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "udpt"


def _named_in_layout() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in layout.splitlines() if line.strip().startswith("udpt/")]
    return {name for row in rows for name in re.findall(r"(\w+)(?:\.py|/)", row)} - {"udpt"}


def _present() -> set[str]:
    return {
        path.stem
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }


def test_the_readme_layout_names_every_top_level_module() -> None:
    assert _present() - _named_in_layout() == set()


def test_the_readme_layout_names_no_module_that_is_gone() -> None:
    assert _named_in_layout() - _present() == set()
