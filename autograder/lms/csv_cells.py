"""A CSV file read as the LMS wrote it, so that a few cells can be changed and every other byte kept.

An LMS re-imports the grade file it exported: Canvas compares every cell with what it has (a cell it finds
changed is a change, and a blank one removes a grade), Moodle matches headers by their exact text. So the
grader writes back the file the instructor downloaded with only its own column's cells replaced: the
byte-order mark, the delimiter, each field's quoting and the line endings stay as they were.

:class:`CsvCells` splits the text into fields as RFC 4180 does (quoted fields may hold the delimiter,
quotes doubled, and line breaks), keeping each field's raw text; :meth:`CsvCells.text` joins them again.

Runs in the grader's process.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

__all__ = ["CsvCells", "sniff_delimiter"]


def sniff_delimiter(text: str) -> str:
    """``;`` when the first three records split into as many fields each with it, more than with ``,`` (Canvas's
    rule), else ``,``."""
    counts = {d: [len(r) for _, r in zip(range(3), csv.reader(io.StringIO(text), delimiter=d))] for d in (",", ";")}
    if len(set(counts[";"])) == 1 and counts[";"] and counts[";"][0] > counts[","][0]:
        return ";"
    return ","


@dataclass
class _Field:
    raw: str      # the field as written, quotes included
    value: str    # what it says


class CsvCells:
    """The records of a CSV text, each a list of fields that keep their raw text.

    Example::

        sheet = CsvCells(path.read_bytes().decode("utf-8-sig"))
        sheet.set(3, 5, "31.5")
        path.write_text(sheet.text())   # every other byte as it was
    """

    def __init__(self, text: str, delimiter: str | None = None, bom: bool = False):
        self.delimiter = delimiter or sniff_delimiter(text)
        self.bom = bom
        self._records: list[tuple[list[_Field], str]] = []  # fields, and the line ending after them
        self._parse(text)

    @classmethod
    def read(cls, data: bytes) -> CsvCells:
        """From a file's bytes (UTF-8, with or without a byte-order mark)."""
        bom = data.startswith(b"\xef\xbb\xbf")
        return cls(data[3 if bom else 0:].decode("utf-8"), bom=bom)

    def _parse(self, text: str) -> None:
        i, n, d = 0, len(text), self.delimiter
        while i < n:
            fields: list[_Field] = []
            while True:
                start = i
                if i < n and text[i] == '"':
                    i += 1
                    value = []
                    while i < n:
                        if text[i] == '"':
                            if i + 1 < n and text[i + 1] == '"':
                                value.append('"')
                                i += 2
                                continue
                            i += 1
                            break
                        value.append(text[i])
                        i += 1
                    while i < n and text[i] not in (d, "\r", "\n"):  # text after a closing quote, kept as written
                        value.append(text[i])
                        i += 1
                    fields.append(_Field(text[start:i], "".join(value)))
                else:
                    while i < n and text[i] not in (d, "\r", "\n"):
                        i += 1
                    fields.append(_Field(text[start:i], text[start:i]))
                if i < n and text[i] == d:
                    i += 1
                    continue
                break
            end = i
            if text.startswith("\r\n", i):
                i += 2
            elif i < n:
                i += 1
            self._records.append((fields, text[end:i]))

    @property
    def rows(self) -> list[list[str]]:
        """Every record's field values."""
        return [[f.value for f in fields] for fields, _ in self._records]

    def set(self, row: int, column: int, value: str) -> None:
        """Write ``value`` into one cell, quoted only if it needs it (a record too short gets empty fields)."""
        fields = self._records[row][0]
        while len(fields) <= column:
            fields.append(_Field("", ""))
        needs = any(c in value for c in (self.delimiter, '"', "\r", "\n")) or value != value.strip()
        raw = '"' + value.replace('"', '""') + '"' if needs else value
        fields[column] = _Field(raw, value)

    def text(self) -> str:
        """The CSV again: the changed cells new, every other character as read."""
        out = io.StringIO()
        out.write("\ufeff" if self.bom else "")
        for fields, ending in self._records:
            out.write(self.delimiter.join(f.raw for f in fields))
            out.write(ending)
        return out.getvalue()

    def data(self) -> bytes:
        """:meth:`text` as the file's bytes (UTF-8, the byte-order mark as read)."""
        return self.text().encode("utf-8")
