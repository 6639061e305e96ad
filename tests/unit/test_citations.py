"""Code and docs cite only what a reader of the repository can open: the OpenAPI copy in
apps/core/spec/ or the rule itself, never a planning document kept outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]

# Documents that live outside the repository (split so this file does not cite them itself).
OUTSIDE = re.compile("|".join(re.escape(name) for name in (
    "CONTRACT" + ".md", "DESIGN" + ".md", "shared" + "/spec", ".." + "/shared")), re.IGNORECASE)
# A section sign is fine after a public standard's name: "[MS-DOC] §2.4.1", "RFC 9110 §15".
PUBLIC_SECTION = re.compile(r"(\[MS-[A-Z0-9]+\]|RFC ?\d+)\s*§")


SKIPPED_DIRS = {".git", ".venv", ".data", "node_modules", "__pycache__"}


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=BASE_DIR, capture_output=True, text=True)
    if listed.returncode == 0:
        paths = [BASE_DIR / name for name in listed.stdout.split("\0") if name]
    else:  # not a git checkout (an unpacked release)
        paths = [path for path in BASE_DIR.rglob("*")
                 if not SKIPPED_DIRS & set(path.relative_to(BASE_DIR).parts)]
    files = []
    for path in paths:
        if path == Path(__file__).resolve():  # it names what it looks for
            continue
        if path.is_file() and path.suffix not in (".png", ".jpg", ".gif", ".ico", ".gguf", ".bin"):
            files.append(path)
    return files


def test_nothing_cites_a_document_outside_the_repository():
    found = []
    for path in _tracked_text_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line) or "§" in PUBLIC_SECTION.sub("", line):
                found.append(f"{path.relative_to(BASE_DIR)}:{number}: {line.strip()}")
    assert not found, "cite apps/core/spec/ or state the rule instead:\n" + "\n".join(found)


def test_the_check_sees_such_citations():
    assert OUTSIDE.search("(see CONTRACT" + ".md)") and OUTSIDE.search("copy of ../shared" + "/spec")
    assert "§" in PUBLIC_SECTION.sub("", "as the contract says (§3.1)")
    assert "§" not in PUBLIC_SECTION.sub("", "the piece table ([MS-DOC] §2.4.1)")
