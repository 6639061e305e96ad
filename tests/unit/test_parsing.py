"""File parsing and chunking for file_search, on documents made in the test."""

from __future__ import annotations

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
