"""Turns an uploaded file into plain text for file_search, for the types OpenAI listed. Parser
libraries are imported only when a file of their type arrives."""

from __future__ import annotations

import io
from html.parser import HTMLParser
from pathlib import PurePosixPath


class ParseError(Exception):
    code = "invalid_file"


class UnsupportedFileError(ParseError):
    code = "unsupported_file"


class InvalidFileError(ParseError):
    code = "invalid_file"


TEXT_EXTENSIONS = {
    ".c", ".cpp", ".cs", ".css", ".go", ".java", ".js", ".json", ".md", ".php", ".py", ".rb",
    ".sh", ".tex", ".ts", ".txt",
}
SUPPORTED_EXTENSIONS = TEXT_EXTENSIONS | {".html", ".htm", ".pdf", ".doc", ".docx", ".pptx"}


def _decode_text(data: bytes) -> str:
    """utf-8, utf-16 (with a BOM) or ascii, as OpenAI required for text files."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InvalidFileError("The file is not valid UTF-16 text.") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFileError("The file's text must be UTF-8, UTF-16 or ASCII.") from exc


class _TextOfHTML(HTMLParser):
    _SKIP = {"script", "style", "noscript", "template"}
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section",
              "article", "header", "footer", "pre", "table", "ul", "ol"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html(data: bytes) -> str:
    parser = _TextOfHTML()
    parser.feed(_decode_text(data))
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise InvalidFileError(f"The PDF could not be read: {exc}") from exc


def _docx(data: bytes) -> str:
    import zipfile

    from docx import Document

    try:
        document = Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InvalidFileError(f"The .docx file could not be read: {exc}") from exc
    parts = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append("\t".join(cell.text for cell in row.cells))
    return "\n".join(part for part in parts if part.strip())


def _doc(data: bytes) -> str:
    from workers.ingest.word97 import Word97Error, extract_doc_text

    try:
        return extract_doc_text(data)
    except Word97Error as exc:
        raise InvalidFileError(f"The .doc file could not be read: {exc}") from exc


def _pptx(data: bytes) -> str:
    import zipfile

    from pptx import Presentation

    try:
        presentation = Presentation(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InvalidFileError(f"The .pptx file could not be read: {exc}") from exc
    slides = []
    for number, slide in enumerate(presentation.slides, start=1):
        texts = [shape.text_frame.text for shape in slide.shapes if shape.has_text_frame]
        slides.append(f"Slide {number}\n" + "\n".join(t for t in texts if t.strip()))
    return "\n\n".join(slides)


def extract_text(data: bytes, filename: str) -> str:
    extension = PurePosixPath(filename.lower()).suffix
    if extension not in SUPPORTED_EXTENSIONS:
        raise UnsupportedFileError(
            f"Files with extension [{extension or 'none'}] are not supported for file search. "
            f"Supported: {', '.join(sorted(SUPPORTED_EXTENSIONS))}.")
    if extension in TEXT_EXTENSIONS:
        text = _decode_text(data)
    elif extension in (".html", ".htm"):
        text = _html(data)
    elif extension == ".pdf":
        text = _pdf(data)
    elif extension == ".docx":
        text = _docx(data)
    elif extension == ".doc":
        text = _doc(data)
    else:
        text = _pptx(data)
    if not text.strip():
        raise InvalidFileError("The file contains no text to index.")
    return text
