"""Text of a legacy Word (.doc, Word 97–2003) file: the main document's characters, read from
the piece table ([MS-DOC] §2.4.1) of the OLE compound file. No layout, fields show their
result, tables become tab-separated lines.

Ours rather than Debian's `antiword` or `catdoc`: both are C programs no longer developed
(antiword 0.37 is from 2005 and still gets Debian security patches; catdoc 0.95 from 2016),
so they would parse untrusted bytes in C and add a system package to every image and host.
This reader is memory-safe Python and runs in the same limited child process as every other
parser (`workers.ingest.isolated`)."""

from __future__ import annotations

import io
import struct

FIB_MAGIC = 0xA5EC
F_ENCRYPTED = 0x0100
F_WHICH_TABLE = 0x0200
FC_CLX_INDEX = 33  # FibRgFcLcb97: the Clx (piece table) pair
CCP_TEXT_INDEX = 3  # FibRgLw97: characters in the main document
FIELD_BEGIN, FIELD_SEPARATOR, FIELD_END = "\x13", "\x14", "\x15"


class Word97Error(ValueError):
    pass


def _fib(word: bytes) -> tuple[int, int, int, int]:
    """(flags, ccpText, fcClx, lcbClx) from the File Information Block."""
    if len(word) < 64 or struct.unpack_from("<H", word, 0)[0] != FIB_MAGIC:
        raise Word97Error("not a Word 97-2003 document")
    flags = struct.unpack_from("<H", word, 0x0A)[0]
    position = 32
    csw = struct.unpack_from("<H", word, position)[0]
    position += 2 + csw * 2
    cslw = struct.unpack_from("<H", word, position)[0]
    lw_start = position + 2
    if cslw <= CCP_TEXT_INDEX:
        raise Word97Error("the File Information Block is damaged")
    ccp_text = struct.unpack_from("<i", word, lw_start + CCP_TEXT_INDEX * 4)[0]
    if ccp_text < 0:
        raise Word97Error(f"the document claims a negative length ({ccp_text})")
    position = lw_start + cslw * 4
    pairs = struct.unpack_from("<H", word, position)[0]
    if pairs <= FC_CLX_INDEX:
        raise Word97Error("the document has no piece table")
    fc_clx, lcb_clx = struct.unpack_from("<II", word, position + 2 + FC_CLX_INDEX * 8)
    return flags, ccp_text, fc_clx, lcb_clx


def _pieces(clx: bytes, word_size: int) -> list[tuple[int, int, int, bool]]:
    """(cp_start, cp_end, file offset, compressed) for each piece of text. Every count, size
    and range is checked against the bytes really there: a hostile file must end in an error,
    never in a loop or a read past the end."""
    position = 0
    while position < len(clx) and clx[position] == 0x01:  # Prc: formatting, skipped
        cb_grpprl = struct.unpack_from("<h", clx, position + 1)[0]
        if cb_grpprl < 0:
            # Today's -3 would step back onto itself forever.
            raise Word97Error(f"the piece table is damaged (formatting block of size {cb_grpprl})")
        position += 3 + cb_grpprl
    if position >= len(clx) or clx[position] != 0x02:
        raise Word97Error("the piece table is damaged")
    size = struct.unpack_from("<I", clx, position + 1)[0]
    table = clx[position + 5: position + 5 + size]
    if size < 4 or len(table) != size or (size - 4) % 12:
        raise Word97Error(f"the piece table is damaged (declared {size} bytes, {len(table)} present)")
    count = (size - 4) // 12
    cps = struct.unpack_from(f"<{count + 1}i", table, 0)
    if cps[0] < 0 or any(later < earlier for earlier, later in zip(cps, cps[1:], strict=False)):
        raise Word97Error("the piece table is damaged (character positions out of order)")
    pieces = []
    for index in range(count):
        fc = struct.unpack_from("<I", table, (count + 1) * 4 + index * 8 + 2)[0]
        compressed = bool(fc & 0x40000000)
        offset = (fc & 0x3FFFFFFF) // 2 if compressed else fc & 0x3FFFFFFF
        length = (cps[index + 1] - cps[index]) * (1 if compressed else 2)
        if offset + length > word_size:
            raise Word97Error(f"piece {index} lies outside the document ({offset}+{length} > {word_size})")
        pieces.append((cps[index], cps[index + 1], offset, compressed))
    return pieces


def _clean(raw: str) -> str:
    out: list[str] = []
    depth_in_code: list[bool] = []  # per open field: still in its instructions?
    for char in raw:
        if char == FIELD_BEGIN:
            depth_in_code.append(True)
        elif char == FIELD_SEPARATOR and depth_in_code:
            depth_in_code[-1] = False
        elif char == FIELD_END and depth_in_code:
            depth_in_code.pop()
        elif any(depth_in_code):
            continue
        elif char in "\r\x0b\x0c":
            out.append("\n")
        elif char == "\x07":  # a cell ends; a second mark right after it ends the row
            if out and out[-1] == "\t":
                out[-1] = "\n"
            else:
                out.append("\t")
        elif char == "\t" or char >= " ":
            out.append(char)
    lines = (line.rstrip("\t ") for line in "".join(out).split("\n"))
    return "\n".join(lines).strip()


def extract_doc_text(data: bytes) -> str:
    import olefile

    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            word = ole.openstream("WordDocument").read()
            flags, ccp_text, fc_clx, lcb_clx = _fib(word)
            if flags & F_ENCRYPTED:
                raise Word97Error("the document is encrypted")
            table_name = "1Table" if flags & F_WHICH_TABLE else "0Table"
            if not ole.exists(table_name):
                raise Word97Error(f"the {table_name} stream is missing")
            table = ole.openstream(table_name).read()
    except (OSError, struct.error) as exc:
        raise Word97Error(str(exc)) from exc
    if fc_clx + lcb_clx > len(table):
        raise Word97Error(f"the piece table lies outside the {table_name} stream")
    try:
        pieces = _pieces(table[fc_clx: fc_clx + lcb_clx], len(word))
    except struct.error as exc:
        raise Word97Error("the piece table is damaged") from exc
    parts = []
    for cp_start, cp_end, offset, compressed in pieces:
        if cp_start >= ccp_text:
            break  # past the main document: footnotes, headers, comments
        length = min(cp_end, ccp_text) - cp_start
        if compressed:
            parts.append(word[offset: offset + length].decode("cp1252", errors="replace"))
        else:
            parts.append(word[offset: offset + 2 * length].decode("utf-16-le", errors="replace"))
    return _clean("".join(parts))
