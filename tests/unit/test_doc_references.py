"""Every citation of a project document points at a file and a section that exist.

Code, tests, tools and benchmarks cite the documents of ``docs/`` by path and
section, as in ``docs/DESIGN.md §1``; other documents (the top-level README and
BENCHMARKS) by name. A bare ``§N`` refers to the document cited last before it
in the same file (``... §3, §7 and §9``, or a table under a heading that names
the document), unless it follows an RFC or BEP number; in a document of
``docs/``, a bare ``§N`` is a section of that document.

A section exists when the document has a numbered heading for it, in one format:
``## 6. Title`` for a section, ``### 6.7 Title`` for a subsection (checked by
``test_numbered_headings_have_one_format``). The documents of ``docs/`` also
cite each other; there the name alone is enough.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SCANNED_DIRS = ("udpt", "tests", "tools", "benchmarks")
SCANNED_FILES = ("README.md",)
SUFFIXES = {".py", ".c", ".h", ".md", ".toml", ".txt", ".sh"}

DOCS_DOCUMENTS = frozenset({"PROTOCOL", "UDPT-COMPAT", "DESIGN", "PYTHON-STACK", "STYLE"})
"""Documents that live in docs/ and must be cited with the ``docs/`` prefix."""

_SECTION = r"\d+(?:\.\d+)*"
_TOKEN = re.compile(
    rf"(?<![\w/.-])(?P<prefix>docs/)?(?P<name>[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*)\.md\b"
    rf"(?:[ \t]*§[ \t]*(?P<section>{_SECTION}))?"
    rf"(?P<unmarked>[ \t]+(?:sections?[ \t]+)?\d)?"
    rf"|§[ \t]*(?P<bare>{_SECTION})"
)
_EXTERNAL = re.compile(r"\b(?:RFC|BEP)[ \t]*\d+[ \t]*$")
_HEADING = re.compile(rf"^(?P<hashes>#+)[ \t]+(?P<number>{_SECTION})(?P<dot>\.?)[ \t]")


@dataclass(frozen=True)
class Citation:
    where: str  # file:line
    prefixed: bool
    name: str
    section: str | None
    unmarked: bool = False


def scanned_files() -> list[Path]:
    files = [ROOT / name for name in SCANNED_FILES]
    for directory in SCANNED_DIRS:
        files.extend(
            path
            for path in sorted((ROOT / directory).rglob("*"))
            if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts
        )
    return files


def citations_in(path: Path) -> list[Citation]:
    """The citations in ``path``, bare sections resolved to the document cited before them."""
    text = path.read_text(encoding="utf-8", errors="replace")
    where = path.relative_to(ROOT).as_posix()
    found: list[Citation] = []
    own = (True, path.stem) if path.parent == DOCS else None
    last: tuple[bool, str] | None = own
    for match in _TOKEN.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        if match["name"]:
            named = (bool(match["prefix"]), match["name"])
            found.append(
                Citation(
                    f"{where}:{line}", *named, match["section"], unmarked=bool(match["unmarked"])
                )
            )
            last = own or named
            continue
        line_start = text.rfind("\n", 0, match.start()) + 1
        if last is None or _EXTERNAL.search(text[line_start : match.start()]):
            continue
        found.append(Citation(f"{where}:{line}", *last, match["bare"]))
    return found


@cache
def headings(document: Path) -> frozenset[str]:
    numbers = set()
    for line in document.read_text(encoding="utf-8").splitlines():
        match = _HEADING.match(line)
        if match:
            numbers.add(match["number"])
    return frozenset(numbers)


def problems_of(citation: Citation, in_docs: bool) -> list[str]:
    """What is wrong with ``citation`` (nothing: an empty list)."""
    name = f"{citation.name}.md"
    found = []
    if citation.name in DOCS_DOCUMENTS:
        if not citation.prefixed and not in_docs:
            found.append(f"cite {name} as docs/{name}")
        target = DOCS / name
    elif citation.prefixed or (in_docs and (DOCS / name).exists()):
        target = DOCS / name
    else:
        target = ROOT / name
    shown = target.relative_to(ROOT).as_posix()
    if not target.is_file():
        return [*found, f"{shown} does not exist"]
    if citation.unmarked:
        found.append(f"write the section of {name} with §, as {name} §N")
    if citation.section is not None and citation.section not in headings(target):
        found.append(f"{shown} has no heading for §{citation.section}")
    return found


def all_problems(paths: list[Path]) -> list[str]:
    problems = []
    for path in paths:
        in_docs = path.parent == DOCS
        for citation in citations_in(path):
            problems.extend(f"{citation.where}: {p}" for p in problems_of(citation, in_docs))
    return problems


def test_code_cites_documents_and_sections_that_exist() -> None:
    problems = all_problems(scanned_files())
    assert not problems, "broken document citations:\n" + "\n".join(problems)


def test_documents_cite_each_other_correctly() -> None:
    problems = all_problems(sorted(DOCS.glob("*.md")))
    assert not problems, "broken cross-references in docs/:\n" + "\n".join(problems)


def test_the_scanner_finds_the_citations() -> None:
    """Guards the test itself: a broken pattern would find nothing and pass."""
    cited = [c for path in scanned_files() for c in citations_in(path)]
    assert len(cited) > 60
    assert {c.name for c in cited} >= DOCS_DOCUMENTS


def test_numbered_headings_have_one_format() -> None:
    """``## N. Title`` and ``### N.M Title``; each number once per document."""
    problems = []
    for document in sorted(DOCS.glob("*.md")):
        seen: set[str] = set()
        for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
            match = _HEADING.match(line)
            if not match:
                continue
            where = f"{document.relative_to(ROOT).as_posix()}:{number}"
            depth = match["number"].count(".") + 2
            if len(match["hashes"]) != depth or bool(match["dot"]) != (depth == 2):
                problems.append(f"{where}: expected '## N. Title' or '### N.M Title': {line}")
            if match["number"] in seen:
                problems.append(f"{where}: section {match['number']} appears twice")
            seen.add(match["number"])
    assert not problems, "\n".join(problems)


def test_every_docs_document_is_in_the_index() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if p.name != "README.md"]
    missing = [name for name in missing if f"]({name})" not in index]
    assert not missing, f"docs/README.md does not list {missing}"
