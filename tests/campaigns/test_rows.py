"""Lenders' account files (issue 12): encodings, headers, Excel's values, bad rows with the row
numbers the lender sees, duplicates, whole-file problems, and memory that does not grow with
the file."""

from __future__ import annotations

import datetime as dt
import io
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.campaigns import columns
from bot.campaigns.columns import parse_map
from bot.campaigns.rows import FileProblem, RowError, progress, read_accounts, write_errors
from bot.phones import mobile_e164
from bot.records import AccountRecord
from common.errors import UsageError

ZH_HEADER = "账号,姓名,手机号,应还金额,逾期天数,到期日"
EN_HEADER = "Account_ID,Name,Mobile,Amount Due,days_overdue,due_date"
ROW_A = "A10001234,张三,13800138000,3200.00,30,2026-11-20"
ROW_B = "A10005678,李四,13900139000,150.50,5,2026-11-25"


def read(data: bytes, **kw: object) -> list[tuple[int, AccountRecord | RowError]]:
    return list(read_accounts(io.BytesIO(data), **kw))  # type: ignore[arg-type]


def records(items: list[tuple[int, AccountRecord | RowError]]) -> list[AccountRecord]:
    return [r for _, r in items if isinstance(r, AccountRecord)]


def errors(items: list[tuple[int, AccountRecord | RowError]]) -> list[str]:
    return [str(r) for _, r in items if isinstance(r, RowError)]


def csv_bytes(*lines: str, encoding: str = "utf-8") -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_encodings_excel_and_core_banking_write(encoding: str) -> None:
    rows = read(csv_bytes(ZH_HEADER, ROW_A, ROW_B, encoding=encoding))
    assert [(n, r.id, r.name) for n, r in rows if isinstance(r, AccountRecord)] == [
        (2, "A10001234", "张三"),
        (3, "A10005678", "李四"),
    ]
    first = records(rows)[0]
    assert first.phone == "+8613800138000"
    assert first.amount_due == Decimal("3200.00")
    assert first.due_date == dt.date(2026, 11, 20)
    assert first.last4 == "1234"


def test_gbk_file_whose_first_64k_are_ascii_switches_when_chinese_appears() -> None:
    ascii_rows = [f"A{100000 + i:08d},Zhang,13800138000,1,1,2026-11-20" for i in range(2000)]
    data = csv_bytes(
        EN_HEADER, *ascii_rows, "A20001234,王五,13700137000,9,9,2026-11-20", encoding="gbk"
    )
    rows = read(data)
    assert errors(rows) == []
    assert records(rows)[-1].name == "王五"


@pytest.mark.parametrize(
    "header",
    [
        EN_HEADER,
        "ID,NAME,PHONE,AMOUNT,DAYS_OVERDUE,DUE_DATE",
        "合同号, 客户姓名 ,手机号码,欠款金额,逾期天数,应还日期",
        "ＩＤ,Ｎａｍｅ,ｍｏｂｉｌｅ,amount_due,Days Overdue,due-date",
    ],
)
def test_header_synonyms_any_case_width_and_spacing(header: str) -> None:
    assert [r.id for r in records(read(csv_bytes(header, ROW_A)))] == ["A10001234"]


@pytest.mark.parametrize("delimiter", ["\t", ";"])
def test_delimiter_is_sniffed(delimiter: str) -> None:
    data = csv_bytes(ZH_HEADER.replace(",", delimiter), ROW_A.replace(",", delimiter))
    assert len(records(read(data))) == 1


def test_map_names_columns_the_synonyms_do_not_know() -> None:
    header = "借款编号,客户,手机,欠款,逾期,到期日,卡尾号,流程"
    data = csv_bytes(header, ROW_A + ",0042,gentle")
    mapping = parse_map("借款编号=id，客户=name,欠款=amount_due,逾期=days_overdue,卡尾号=last4")
    [record] = records(read(data, mapping=mapping))
    assert (record.id, record.name, record.last4, record.flow) == (
        "A10001234",
        "张三",
        "0042",
        "gentle",
    )
    with pytest.raises(UsageError, match="unknown field 'mobile'"):
        read_accounts(io.BytesIO(data), mapping={"手机": "mobile"})
    with pytest.raises(UsageError, match="not COLUMN=FIELD"):
        parse_map("手机")


def test_flow_argument_fills_rows_that_name_none() -> None:
    data = csv_bytes(ZH_HEADER + ",流程", ROW_A + ",", ROW_B + ",gentle")
    assert [r.flow for r in records(read(data, flow="soft"))] == ["soft", "gentle"]


def test_values_as_lenders_write_them_in_text() -> None:
    lines = [
        'A1,张三,+86 138-0013-8000,"3,200.00",30,2026/11/20,1234',
        "A2,李四,138 0013 8000,¥3200,３０,20261120,0042",
        "A3,王五,13800138000.0,3200元,30天,2026年11月20日,1234",
        "12345.0,赵六,13800138000,￥3，200.5,30,46000,2345",
    ]
    got = records(read(csv_bytes(ZH_HEADER + ",尾号", *lines)))
    assert [(r.id, r.phone, r.amount_due, r.days_overdue, r.due_date) for r in got] == [
        ("A1", "+8613800138000", Decimal("3200.00"), 30, dt.date(2026, 11, 20)),
        ("A2", "+8613800138000", Decimal("3200"), 30, dt.date(2026, 11, 20)),
        ("A3", "+8613800138000", Decimal("3200"), 30, dt.date(2026, 11, 20)),
        ("12345", "+8613800138000", Decimal("3200.5"), 30, dt.date(2025, 12, 9)),
    ]


def test_real_xlsx_with_excel_dates_serials_floats_and_numbers_as_text(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["2026年11月逾期客户名单"])  # a report title above the header
    sheet.append(["账户号", "姓名", "手机号", "应还金额", "逾期天数", "到期日", "尾号", "备注"])
    sheet.append(
        [12345678.0, "张三", 13800138000.0, 3200.0, 30.0, dt.datetime(2026, 11, 20), 42, "x"]
    )
    sheet.append(["A10005678", "李四", "138 0013 8000", "3,200.10", "30", 46000, "5678", None])
    sheet.append([None] * 8)  # blank: skipped, still counted
    sheet.append(
        ["A10009999", "王五", "12345", 1234.5600000000001, 3, dt.date(2026, 1, 2), None, None]
    )
    sheet.append(["A10001111", "赵六", "13900139000", 99, 1, "2026-12-01", None, None])
    path = tmp_path / "accounts.xlsx"
    book.save(path)

    items = list(read_accounts(path))
    assert [
        (n, r.id, r.phone, r.amount_due, r.due_date, r.last4)
        for n, r in items
        if isinstance(r, AccountRecord)
    ] == [
        (3, "12345678", "+8613800138000", Decimal("3200.00"), dt.date(2026, 11, 20), "0042"),
        (4, "A10005678", "+8613800138000", Decimal("3200.10"), dt.date(2025, 12, 9), "5678"),
        (7, "A10001111", "+8613900139000", Decimal("99"), dt.date(2026, 12, 1), "1111"),
    ]
    assert errors(items) == ["row 6: phone: ***45 is not a valid phone number"]
    # The same bytes from a stream without a name are recognised as XLSX by their content.
    assert len(records(read(path.read_bytes()))) == 3


def test_bad_rows_mid_file_keep_their_row_numbers_and_the_good_rows_around_them() -> None:
    lines = [
        ROW_A,
        "A2,李四,010-12345678,abc,-1,2026-13-01",
        "",
        ROW_B,
        "A4,,13800138000,1,1,2026-11-20",
    ]
    items = read(csv_bytes(ZH_HEADER, *lines))
    assert [(n, r.id) for n, r in items if isinstance(r, AccountRecord)] == [
        (2, "A10001234"),
        (5, "A10005678"),
    ]
    assert errors(items) == [
        "row 3: phone: 010-****5678 is a landline: an SMS cannot reach it",
        "row 3: amount_due: not an amount",
        "row 3: days_overdue: not a whole number of days",
        "row 3: due_date: not a date (2026-11-20, 2026/11/20, 20261120 or 2026年11月20日)",
        "row 6: name: empty",
    ]


def test_the_records_own_validation_gives_one_error_per_field() -> None:
    line = "A-12,张三,13800138000,-5,30,2026-11-20,12,Mars/Base"
    assert errors(read(csv_bytes(ZH_HEADER + ",尾号,时区", line))) == [
        "row 2: amount_due: Input should be greater than or equal to 0",
        "row 2: tz: unknown time zone 'Mars/Base'",
        "row 2: last4: String should match pattern '^\\d{4}$'",
    ]


def test_a_quoted_line_break_is_one_row_as_in_excel() -> None:
    data = csv_bytes(
        ZH_HEADER, 'A10001234,"张\n三",13800138000,1,1,2026-11-20', "A2,李四,1,1,1,2026-11-20"
    )
    assert [(n, type(r).__name__) for n, r in read(data)] == [(2, "AccountRecord"), (3, "RowError")]


def test_duplicates_are_errors_so_the_counts_add_up() -> None:
    changed = ROW_A.replace("3200.00", "100")
    same = ROW_A.replace("3200.00", '"3,200"')  # the same account, written differently
    items = read(csv_bytes(ZH_HEADER, ROW_A, ROW_B, changed, same))
    assert len(items) == 4
    assert errors(items) == [
        "row 4: id: duplicate of row 2 (same id, different values)",
        "row 5: id: same as row 2",
    ]


def test_missing_required_column_names_it_and_the_columns_found() -> None:
    with pytest.raises(FileProblem) as caught:
        read(csv_bytes("账号,姓名,应还金额,逾期天数,到期日,备注", ROW_A))
    message = str(caught.value)
    assert "phone (手机号/手机/" in message and "Columns found: 账号, 姓名, 应还金额" in message
    assert "id" not in message.split("Columns found")[0].replace("phone", "")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\r\n\r\n", "no header"),
        (b"hello,world\r\n1,2\r\n", "no header row"),
        (b"id,hello\r\n1,2\r\n", "required columns missing"),
        (bytes(range(256)) * 10, "binary"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, r"\.xls"),
        (b"PK\x03\x04" + b"junk" * 50, "not a readable XLSX"),
        ("账号,姓名".encode("utf-16"), "UTF-16"),
        (b"x" * (2 << 20), "longer than 1 MiB"),
    ],
)
def test_whole_file_problems(data: bytes, reason: str) -> None:
    with pytest.raises(FileProblem, match=reason):
        read(data)


def test_a_file_without_a_header_does_not_quote_a_borrower() -> None:
    with pytest.raises(FileProblem) as caught:
        read(csv_bytes(*[ROW_A] * 12))
    assert "no header row" in str(caught.value)
    assert "张三" not in str(caught.value) and "13800138000" not in str(caught.value)


def test_a_file_named_xlsx_that_is_not_a_zip() -> None:
    with pytest.raises(FileProblem, match=r"named \.xlsx"):
        read(csv_bytes(ZH_HEADER, ROW_A), filename="accounts.xlsx")


def test_only_a_header_gives_nothing() -> None:
    assert read(csv_bytes(ZH_HEADER)) == []


def test_bad_bytes_in_a_utf8_file_are_a_row_error_not_a_crash() -> None:
    good = [f"A{10000000 + i},张三,13800138000,1,1,2026-11-20" for i in range(20)]
    data = csv_bytes(ZH_HEADER, *good[:10]) + b"A3,\xff\xfe\xe5,13800138000,1,1,2026-11-20\r\n"
    data += csv_bytes(*good[10:])
    items = read(data)
    assert errors(items) == ["row 12: bytes that are not utf-8 text"]
    assert len(records(items)) == 20


def test_write_errors_is_utf8_with_bom_one_line_each(tmp_path: Path) -> None:
    path = tmp_path / "errors.txt"
    count = write_errors([RowError(17, "phone", "不是手机号"), RowError(18, None, "bad")], path)
    assert count == 2
    assert path.read_bytes() == "\ufeffrow 17: phone: 不是手机号\r\nrow 18: bad\r\n".encode()


def test_progress_passes_every_item_through_without_a_terminal() -> None:
    reader = read_accounts(io.BytesIO(csv_bytes(ZH_HEADER, ROW_A, ROW_B)))
    assert len(list(progress(reader, 100, "reading"))) == 2


def generated_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="gbk", newline="") as out:
        out.write(ZH_HEADER + "\r\n")
        for i in range(rows):
            out.write(
                f"A{10000000 + i},张三{i % 100},1380013{i % 10000:04d},{i % 9000}.50,{i % 90},2026-11-20\r\n"
            )


def peak_while_reading(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_accounts(path))
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.timeout(300)
def test_memory_grows_only_with_the_id_set(tmp_path: Path) -> None:
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    generated_csv(small, 20_000)
    generated_csv(large, 200_000)
    count, peak = peak_while_reading(large)
    _, small_peak = peak_while_reading(small)
    assert count == 200_000
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    # What grows is one id (a short str) and its dict slot per row, not the rows themselves.
    assert (peak - small_peak) / 180_000 < 200


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _never_anything_but_file_problem(data: bytes, filename: str | None) -> Iterator[object]:
    try:
        yield from read_accounts(io.BytesIO(data), filename=filename)
    except FileProblem:
        return


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(
        st.binary(max_size=2000),
        st.binary(max_size=500).map(lambda b: b"PK\x03\x04" + b),
        st.lists(st.text(max_size=30), max_size=8).map(
            lambda cells: ",".join([ZH_HEADER, *cells]).encode()
        ),
        st.binary(max_size=300).map(lambda b: csv_bytes(ZH_HEADER).replace(b"\r\n", b"\n") + b),
    ),
    filename=st.sampled_from([None, "a.csv", "a.xlsx", "a.txt", "a.bin"]),
)
@example(data=xlsx_bytes([["账号"], [1]])[:-30], filename=None)
@example(data=b"\xef\xbb\xbf" + csv_bytes(ZH_HEADER, 'A1,"x'), filename=None)
def test_arbitrary_bytes_raise_nothing_but_file_problem(data: bytes, filename: str | None) -> None:
    for _ in _never_anything_but_file_problem(data, filename):
        pass


@settings(max_examples=200, deadline=None)
@given(
    block=st.from_regex(r"1[3-9]\d{5}", fullmatch=True),
    tails=st.lists(st.from_regex(r"\d{4}", fullmatch=True), min_size=2, max_size=4),
)
def test_a_known_number_block_gives_the_answer_the_full_check_gives(
    block: str, tails: list[str]
) -> None:
    for tail in tails:
        number = block + tail
        try:
            expected: str | None = mobile_e164(number)
        except ValueError:
            expected = None
        try:
            got: str | None = columns._phone(number)
        except ValueError:
            got = None
        assert got == expected, number


def test_progress_counts_rows_not_errors_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    data = csv_bytes(ZH_HEADER, ROW_A, "A2,,1,x,x,x", ROW_B)
    items = list(progress(read_accounts(io.BytesIO(data)), len(data), "reading"))
    assert [n for n, _ in items] == [2, 3, 3, 3, 3, 3, 4]


def test_the_readme_example_file_reads_as_the_readme_says() -> None:
    example = Path(__file__).parents[2] / "examples" / "campaign-accounts.csv"
    results = list(read_accounts(example))
    accounts = [r for _, r in results if not isinstance(r, RowError)]
    errors = [str(r) for _, r in results if isinstance(r, RowError)]
    assert len(accounts) == 5 and accounts[0].amount_due == 3200
    assert errors == ["row 6: phone: 010-****5678 is a landline: an SMS cannot reach it"]
