"""The repository stands alone: nothing in it cites files that are not in it (our internal notes live outside the
repository; a user has only what is here), and every `docs/NAME.md` a file points at exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT = {".py", ".md", ".toml", ".sh", ".cfg", ".txt", ".yaml", ".yml", ".json", ".html", ".js", ""}
OUTSIDE = re.compile(r"papers\.md|\.\./shared|shared/docs|machine-notes\.md|style\.md")
DOC_REF = re.compile(r"(?<![\w/.-])docs/([\w.-]+\.md)")


def tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        # not a git checkout (an sdist): every file under the root
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts]
    files = []
    for n in names:
        p = ROOT / n
        small = p.is_file() and p.stat().st_size < 2_000_000
        if p.suffix in TEXT and small and p.name != Path(__file__).name:
            files.append(p)
    return files


def test_no_reference_to_files_outside_the_repository() -> None:
    bad = []
    for p in tracked_text_files():
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for i, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                bad.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()[:120]}")
    assert not bad, "references to files that are not in the repository:\n" + "\n".join(bad)


def test_every_docs_reference_exists() -> None:
    missing = []
    for p in tracked_text_files():
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for m in DOC_REF.finditer(text):
            if not (ROOT / "docs" / m.group(1)).is_file():
                missing.append(f"{p.relative_to(ROOT)}: docs/{m.group(1)}")
    assert not missing, "references to docs that do not exist:\n" + "\n".join(sorted(set(missing)))


@pytest.mark.parametrize("line", ["see papers.md section 2", "../shared/docs/x", "(docs/papers.md)"])
def test_the_pattern_catches_outside_references(line: str) -> None:
    assert OUTSIDE.search(line)
