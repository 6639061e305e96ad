"""File parsing and chunking for file_search, on documents made in the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.documents import make_docx, make_pdf, make_pptx
from workers.ingest.chunking import chunk_text
from workers.ingest.parsing import InvalidFileError, UnsupportedFileError, extract_text


@pytest.mark.parametrize(("name", "data", "expected"), [
    ("a.txt", b"plain words", "plain words"),
    ("a.md", "# Title\n\u00e9t\u00e9".encode(), "# Title\n\u00e9t\u00e9"),
    ("a.py", b"print('hi')", "print('hi')"),
    ("a.json", b'{"k": "v"}', '{"k": "v"}'),
    ("a.txt", "utf16 text".encode("utf-16"), "utf16 text"),
    ("a.html", b"<html><style>p{}</style><script>evil()</script><h1>Head</h1><p>Body <b>bold</b></p></html>",
     "Head\nBody bold"),
])
def test_text_types_are_read(name, data, expected):
    assert extract_text(data, name) == expected


def test_office_and_pdf_documents_are_read():
    assert extract_text(make_pdf("Line one\nLine two"), "r.pdf") == "Line one\nLine two"
    assert extract_text(make_docx(["First", "Second"]), "r.docx") == "First\nSecond"
    assert extract_text(make_pptx(["Deck title"]), "r.pptx") == "Slide 1\nDeck title"


@pytest.mark.parametrize(("name", "data", "error"), [
    ("a.xyz", b"whatever", UnsupportedFileError),
    ("a", b"no extension", UnsupportedFileError),
    ("a.pdf", b"%PDF-1.4 this is not really a pdf", InvalidFileError),
    ("a.docx", b"PK not a zip", InvalidFileError),
    ("a.txt", b"\xff\xfe\x00\xd8", InvalidFileError),
    ("a.txt", b"caf\xe9", InvalidFileError),
    ("a.txt", b"   ", InvalidFileError),
])
def test_unsupported_and_broken_files_are_refused(name, data, error):
    with pytest.raises(error):
        extract_text(data, name)


def test_chunks_never_split_characters_into_garbage():
    text = "\u4f60\u597d\u4e16\u754c " * 400  # multi-byte characters across many windows
    chunks = chunk_text(text, 100, 50)
    assert len(chunks) > 3
    assert all("\ufffd" not in chunk.text for chunk in chunks)


def test_a_short_document_is_one_chunk_and_limits_are_checked():
    assert [c.token_end for c in chunk_text("just a few words")] == [4]
    assert chunk_text("") == []
    with pytest.raises(ValueError):
        chunk_text("x", 99, 0)
    with pytest.raises(ValueError):
        chunk_text("x", 100, 51)


def test_a_negative_overlap_is_refused():
    with pytest.raises(ValueError):
        chunk_text("x", 100, -1)


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_legacy_word_documents_are_read():
    """Word 97-2003 files saved by LibreOffice (tests/fixtures/README.md): 8-bit pieces with
    cp1252 punctuation, a table, and 16-bit pieces for Greek and Japanese."""
    latin = extract_text((FIXTURES / "word97-latin.doc").read_bytes(), "report.doc")
    assert latin.splitlines() == [
        "Harbour tides report",
        "The moon's gravity raises two bulges of water \u2014 high tides arrive twice a day, "
        "about 12 hours 25 minutes apart.",
        "Spring tides cost the harbour \u20ac1,200 in extra pilotage; caf\u00e9 staff noticed too.",
        "Port\tRange",
        "Brest\t7 m",
    ]
    wide = extract_text((FIXTURES / "word97-unicode.doc").read_bytes(), "notes.doc")
    assert wide == ("Greek: \u03bb\u03cc\u03b3\u03bf\u03c2 and \u03b1\u03bb\u03ae\u03b8\u03b5\u03b9\u03b1. "
                    "Japanese: \u6f6e\u6c50\u306f\u6708\u306e\u5f15\u529b\u3067\u8d77\u3053\u308b\u3002\n"
                    "Second paragraph mentions the anchor keyword zephyrine.")


def test_a_broken_doc_is_an_invalid_file():
    with pytest.raises(InvalidFileError):
        extract_text(b"\xd0\xcf\x11\xe0 truncated compound file", "broken.doc")
    with pytest.raises(InvalidFileError):
        extract_text(make_docx(["a docx renamed"]), "renamed.doc")
