"""Hostile documents made on the fly, for the ingestion limits: a .doc whose piece table loops,
zip bombs dressed as .docx, and text past the token limit."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def looping_doc() -> bytes:
    """A real Word 97 file whose piece table starts with a formatting block of size -3
    (cbGrpprl = -3): a reader that trusts the size steps back onto the same byte forever."""
    import olefile

    from workers.ingest.word97 import _fib

    data = (FIXTURES / "word97-latin.doc").read_bytes()
    with olefile.OleFileIO(data) as ole:
        flags, _, fc_clx, _ = _fib(ole.openstream("WordDocument").read())
        name = "1Table" if flags & 0x0200 else "0Table"
        table = bytearray(ole.openstream(name).read())
    table[fc_clx: fc_clx + 3] = b"\x01" + struct.pack("<h", -3)
    out = io.BytesIO(data)
    with olefile.OleFileIO(out, write_mode=True) as ole:
        ole.write_stream(name, bytes(table))
    return out.getvalue()


def docx_bomb(inflated_bytes: int, block: int = 1 << 24) -> bytes:
    """A .docx whose word/document.xml inflates to `inflated_bytes` (a few MB compressed per
    GiB): a well-formed document body padded with spaces, deflated as it is written."""
    out = io.BytesIO()
    head = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document xmlns:w='
            b'"http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>')
    tail = b"</w:t></w:r></w:p></w:body></w:document>"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
            'package/2006/content-types"><Default Extension="rels" ContentType="application/'
            'vnd.openxmlformats-package.relationships+xml"/><Override PartName="/word/document.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.'
            'main+xml"/></Types>'))
        archive.writestr("_rels/.rels", (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats'
            '.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
            'openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
            'Target="word/document.xml"/></Relationships>'))
        info = zipfile.ZipInfo("word/document.xml")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as part:
            part.write(head)
            padding = b" " * block
            left = inflated_bytes - len(head) - len(tail)
            while left > 0:
                part.write(padding[:min(block, left)])
                left -= block
            part.write(tail)
    return out.getvalue()


def many_tokens(tokens: int) -> bytes:
    """Plain text of about `tokens` cl100k tokens (" word" is one token)."""
    return b" word" * tokens
