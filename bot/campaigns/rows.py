"""Lenders' account files (CSV or XLSX) read as a stream of account records or row errors.

Nothing grows with the file but the set of account ids seen (to report duplicates): CSV is
read a line at a time and XLSX through openpyxl's read-only worksheet, which parses the
sheet's XML as it goes (an XLSX's shared-strings table, which Excel writes first, is still
loaded whole: names and ids, about two strings a row). python-calamine was measured against
it (``bench/campaign_import.py --calamine``, 100,000 rows of 8 columns): it reads the cells
12x faster (86,000 against 7,100 rows/s) but holds the whole sheet in memory (peak RSS 111
against 48 MiB, growing up to Excel's 1,048,576 rows), so openpyxl stays; an XLSX reads at
about 4,000 rows/s end to end, a CSV at about 35,000.

CSV text is UTF-8 (with or without BOM) or GB18030, the superset of the GBK that Chinese
Excel and core-banking exports write. The first 64 KiB decide; a file whose start is plain
ASCII switches to GB18030 at its first line that is not UTF-8. A few bad bytes in an
otherwise UTF-8 file make those rows errors, not the file. Both encodings never use the
byte 0x0A inside a character, so splitting lines on bytes is safe.

Row numbers are the lender's: the header is row 1 (or whichever row it is in, after title
rows), data starts on the next; a CSV record with a quoted line break is one row, as in Excel.
"""

from __future__ import annotations

import csv
import shutil
import sys
import tempfile
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, Final, TypeVar

from bot.campaigns import columns
from bot.campaigns.columns import FileProblem, map_header, missing_columns
from bot.records import AccountRecord

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

T = TypeVar("T")

__all__ = ["AccountReader", "FileProblem", "RowError", "progress", "read_accounts", "write_errors"]

_LINE_LIMIT: Final = 1 << 20  # no account row is a megabyte; a file that has one is not text
_HEAD: Final = 64 * 1024
_TITLE_ROWS: Final = 10  # rows above the header a lender's export may have (report title …)
_ZIP: Final = b"PK\x03\x04"
_OLE2: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls, or an encrypted .xlsx
_BOM: Final = b"\xef\xbb\xbf"
_NO_HEADER: Final = (
    f"no header row: none of the first {_TITLE_ROWS} rows names the account columns"
    f" ({', '.join(columns.REQUIRED)}, or their Chinese names)"
)
_REFRESH_ROWS: Final = 1000  # progress bar updates: often enough to see, cheap per row


@dataclass(frozen=True)
class RowError:
    """Why one row (or one field of it) was not taken."""

    row: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}: {self.field}: " if self.field else f"row {self.row}: "
        return where + self.message


Item = tuple[int, AccountRecord | RowError]


class AccountReader(Iterator[Item]):
    """What ``read_accounts`` returns: an iterator that also tells how far into the file it
    is (``bytes_read``, for a progress bar). FileProblem is raised while iterating."""

    def __init__(
        self,
        source: Path | BinaryIO,
        filename: str | None,
        mapping: Mapping[str, str] | None,
        flow: str | None,
    ) -> None:
        self._stream: IO[bytes] | None = None
        self._counted = 0
        self._items = self._run(source, filename, mapping, flow)

    def __next__(self) -> Item:
        return next(self._items)

    def close(self) -> None:
        self._items.close()

    @property
    def bytes_read(self) -> int:
        stream = self._stream
        if stream is not None and stream.seekable() and not stream.closed:
            return stream.tell()
        return self._counted

    def _run(
        self,
        source: Path | BinaryIO,
        filename: str | None,
        mapping: Mapping[str, str] | None,
        flow: str | None,
    ) -> Generator[Item, None, None]:
        name = filename or (source.name if isinstance(source, Path) else "")
        if not name and isinstance(getattr(source, "name", None), str):
            name = source.name
        suffix = Path(name).suffix.lower() if name else ""
        with ExitStack() as stack:
            stream: IO[bytes] = (
                stack.enter_context(source.open("rb")) if isinstance(source, Path) else source
            )
            start = stream.tell() if stream.seekable() else 0
            first = stream.readline(_LINE_LIMIT + 1)
            if not first:
                raise FileProblem("the file is empty: no header row")
            if first.startswith(_ZIP):
                book = _seekable(stream, start, first, stack)
                self._stream = book
                rows: Iterator[tuple[int, Sequence[object] | RowError]] = _xlsx_rows(book)
            elif first.startswith(_OLE2):
                raise FileProblem(
                    "an old Excel .xls (or a password-protected) workbook:"
                    " save it as .xlsx or as CSV UTF-8"
                )
            elif suffix in (".xlsx", ".xlsm"):
                raise FileProblem(f"named {suffix} but not an Excel workbook (not a zip file)")
            else:
                rows = _csv_rows(self._lines(first, stream))
            yield from _accounts(rows, mapping, flow)

    def _lines(self, first: bytes, stream: IO[bytes]) -> Iterator[bytes]:
        line = first
        while line:
            if len(line) > _LINE_LIMIT:
                raise FileProblem("a line longer than 1 MiB: not an accounts file")
            self._counted += len(line)
            yield line
            line = stream.readline(_LINE_LIMIT + 1)


def read_accounts(
    source: Path | BinaryIO,
    *,
    filename: str | None = None,
    mapping: Mapping[str, str] | None = None,
    flow: str | None = None,
) -> AccountReader:
    """(row number, record or error) for each row of a lender's CSV or XLSX account file.

    The format comes from the content (an XLSX is a zip) and ``filename``'s (or the path's)
    extension. ``mapping`` ({column header: field}, from ``--map``) extends the header
    synonyms; ``flow`` is the flow of rows that do not name one. A row may give several
    errors (one per bad field); a blank row gives nothing. Raises FileProblem (while
    iterating) when the file as a whole cannot be read, UsageError for a bad ``mapping``.
    """
    columns.check_mapping(mapping)
    return AccountReader(source, filename, mapping, flow)


def write_errors(errors: Iterable[RowError], path: Path) -> int:
    """One line per error, UTF-8 with a BOM so that Excel opens it as UTF-8; how many."""
    count = 0
    with path.open("w", encoding="utf-8-sig", newline="\r\n") as out:
        for error in errors:
            out.write(f"{error}\n")
            count += 1
    return count


def progress(iterable: Iterable[T], total_bytes: int | None, description: str) -> Iterator[T]:
    """``iterable`` with a progress bar on the terminal (bytes of ``total_bytes`` when the
    iterable tells ``bytes_read``, as an AccountReader does, and rows per second); nothing
    when stdout is not a terminal (a pipe, a log, CI)."""
    from rich.progress import (  # here: only the CLI shows progress
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rows]} rows, {task.fields[rate]} rows/s"),
        TimeElapsedColumn(),
        disable=not sys.stdout.isatty(),
    )
    with bar:
        task = bar.add_task(description, total=total_bytes, rows=0, rate=0)
        started = time.monotonic()
        rows = 0
        last: object = None
        for item in iterable:
            # A row with three bad fields gives three items; it is still one row.
            number = item[0] if isinstance(item, tuple) and item else None
            if number is None or number != last:
                rows, last = rows + 1, number
            yield item
            if rows % _REFRESH_ROWS == 0:
                _advance(bar, task, iterable, rows, started)
        _advance(bar, task, iterable, rows, started)


def _advance(bar: Progress, task: TaskID, source: object, rows: int, started: float) -> None:
    done = getattr(source, "bytes_read", None)
    rate = rows / max(time.monotonic() - started, 1e-9)
    completed = done if isinstance(done, int) else None
    bar.update(task, completed=completed, rows=f"{rows:,}", rate=f"{rate:,.0f}")


# --- the file's rows, before they mean anything ---


def _seekable(stream: IO[bytes], start: int, first: bytes, stack: ExitStack) -> IO[bytes]:
    """The stream again from its start, for zipfile, which seeks."""
    if stream.seekable():
        stream.seek(start)
        return stream
    spool = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115 (the stack closes it)
    stack.callback(spool.close)
    spool.write(first)
    shutil.copyfileobj(stream, spool)
    spool.seek(0)
    return spool


def _xlsx_rows(book: IO[bytes]) -> Iterator[tuple[int, Sequence[object] | RowError]]:
    import openpyxl  # here: a CSV import does not pay for loading it

    try:
        workbook = openpyxl.load_workbook(book, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises a dozen types for a damaged zip or XML
        raise FileProblem(f"not a readable XLSX workbook ({type(exc).__name__})") from None
    try:
        if not workbook.worksheets:
            raise FileProblem("the workbook has no worksheet")
        sheet = workbook.worksheets[0]
        # Some writers store a wrong sheet size; read-only mode would stop at it.
        sheet.reset_dimensions()
        cells = sheet.iter_rows(values_only=True)
        row = 0
        while True:
            try:
                values = next(cells)
            except StopIteration:
                return
            except Exception as exc:  # damage found part-way through the sheet's XML
                raise FileProblem(
                    f"the workbook is damaged after row {row} ({type(exc).__name__})"
                ) from None
            row += 1
            yield row, values
    finally:
        workbook.close()


class _Text:
    """Lines of bytes as text, in the encoding the file's start shows; a line that does not
    decode is read with replacement characters and flagged (``bad``)."""

    def __init__(self, lines: Iterator[bytes]) -> None:
        self._lines = lines
        self.head: list[bytes] = []
        size = 0
        for line in lines:
            self.head.append(line)
            size += len(line)
            if size >= _HEAD:
                break
        if self.head and self.head[0].startswith(_BOM):
            self.head[0] = self.head[0][len(_BOM) :]
            self.encoding = "utf-8"
        else:
            self.encoding = _guess(b"".join(self.head))
        self.ascii_so_far = all(line.isascii() for line in self.head)
        self.bad = False

    def __iter__(self) -> Iterator[str]:
        for line in chain(self.head, self._lines):
            try:
                text = line.decode(self.encoding)
            except UnicodeDecodeError:
                text = self._undecodable(line)
            else:
                if self.ascii_so_far and not line.isascii():
                    self.ascii_so_far = False
            yield text

    def _undecodable(self, line: bytes) -> str:
        if self.ascii_so_far and self.encoding == "utf-8":
            try:
                text = line.decode("gb18030")
            except UnicodeDecodeError:
                pass
            else:
                self.encoding, self.ascii_so_far = "gb18030", False
                return text
        self.bad = True
        return line.decode(self.encoding, "replace")


def _guess(head: bytes) -> str:
    if b"\x00" in head:
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise FileProblem("UTF-16 text (Excel's 'Unicode text'): save it as CSV UTF-8")
        raise FileProblem("a binary file, not CSV text or an XLSX workbook")
    as_utf8 = head.decode("utf-8", "replace")
    wrong = as_utf8.count("\ufffd")
    if not wrong:
        return "utf-8"
    # GBK text is almost never valid UTF-8 past a character or two, while a UTF-8 file with
    # a damaged cell is still mostly valid: read it as UTF-8 and report the damaged rows.
    right = sum(1 for ch in as_utf8 if ord(ch) > 0x7F) - wrong
    return "utf-8" if right >= 4 * wrong else "gb18030"


def _csv_rows(lines: Iterator[bytes]) -> Iterator[tuple[int, Sequence[object] | RowError]]:
    text = _Text(lines)
    reader = csv.reader(iter(text), delimiter=_delimiter(text.head, text.encoding))
    row = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileProblem(f"row {row + 1}: not readable as CSV ({exc})") from None
        row += 1
        if text.bad:
            text.bad = False
            yield row, RowError(row, None, f"bytes that are not {text.encoding} text")
        else:
            yield row, cells


def _delimiter(head: list[bytes], encoding: str) -> str:
    """Comma, tab or semicolon: whichever the first lines (header, titles) have most of."""
    lines = [line.decode(encoding, "replace") for line in head[: _TITLE_ROWS + 1]]
    return max(",\t;", key=lambda d: max((line.count(d) for line in lines), default=0))


# --- rows as account records ---


def _accounts(
    rows: Iterator[tuple[int, Sequence[object] | RowError]],
    mapping: Mapping[str, str] | None,
    flow: str | None,
) -> Iterator[Item]:
    header: dict[str, int] | None = None
    seen: dict[str, int] = {}  # id → its row << 32 | a hash of its record
    for row, cells in rows:
        if header is None:
            if isinstance(cells, RowError):
                raise FileProblem(f"row {row}: the header is not UTF-8 or GB18030 text")
            if not any(columns.filled(c) for c in cells):
                continue
            header = map_header(cells, mapping)
            if header is None:
                # A row naming some fields is the header, short of columns; a row naming
                # none may be a report title above it, or, in a file without a header, a
                # borrower's data, which must not reach the message (the CLI prints it).
                if columns.names_any(cells, mapping):
                    raise FileProblem(missing_columns(cells, mapping))
                if row >= _TITLE_ROWS:
                    raise FileProblem(_NO_HEADER)
            continue
        if isinstance(cells, RowError):
            yield row, cells
            continue
        if not any(columns.filled(c) for c in cells):
            continue  # blank rows (Excel keeps formatted empty rows) are no accounts
        outcome = columns.record(cells, header, flow)
        if isinstance(outcome, list):
            for field, message in outcome:
                yield row, RowError(row, field, message)
        else:
            yield row, _once(row, outcome, seen)
    if header is None:
        raise FileProblem(_NO_HEADER)


def _once(row: int, record: AccountRecord, seen: dict[str, int]) -> AccountRecord | RowError:
    # A 32-bit hash tells identical rows from conflicting ones; a collision would only call
    # a conflicting row "same as" — an error either way, so the counts still add up.
    digest = hash(record) & 0xFFFFFFFF
    earlier = seen.get(record.id)
    if earlier is None:
        seen[record.id] = row << 32 | digest
        return record
    first_row = earlier >> 32
    if earlier & 0xFFFFFFFF == digest:
        return RowError(row, "id", f"same as row {first_row}")
    return RowError(row, "id", f"duplicate of row {first_row} (same id, different values)")
