"""Reading lenders' account files: rows per second and peak memory of ``read_accounts``.

Run: ``.venv/bin/python bench/campaign_import.py [--rows N] [--calamine]``. It writes a CSV in
UTF-8 and in GBK and an XLSX (openpyxl, as Excel would store it: numbers, dates) of N rows
each in a temporary folder, then reads each one through ``read_accounts`` to the last record.
Each file is read in a fresh process so that its peak RSS is its own. ``--calamine`` also
times python-calamine reading the XLSX's cells alone (no validation), against openpyxl's
read-only mode reading them alone, for the choice made in ``bot/campaigns/rows.py`` (it needs
``pip install python-calamine``, which smsbot itself does not use). Phone numbers: see BLOCKS.
Issue 12's target: a 100,000-row import in ≤ 60 s; reading should manage ≥ 20,000 rows/s (CSV).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Borrowers' numbers spread over 5,000 number blocks (号段, the first 7 digits), as a regional
# lender's are; reading validates a block's first number fully and vouches for the rest.
BLOCKS = [f"1{p}{b:04d}" for p in (38, 39, 58, 59, 86, 87, 35, 36, 88, 77) for b in range(500)]
HEADER = ["账号", "姓名", "手机号", "应还金额", "逾期天数", "到期日", "尾号", "备注"]
SURNAMES = "王李张刘陈杨黄赵吴周"


def _row(i: int) -> list[object]:
    return [
        f"LN{20260000000 + i}",
        SURNAMES[i % 10] + "小明",
        BLOCKS[(i * 7919) % len(BLOCKS)] + f"{(i * 104729) % 10_000:04d}",
        round(100 + (i * 37) % 50_000 + (i % 100) / 100, 2),
        i % 180,
        dt.date(2026, 1, 1) + dt.timedelta(days=i % 365),
        f"{i % 10_000:04d}",
        "分期" if i % 3 else "",
    ]


def write_csv(path: Path, rows: int, encoding: str) -> None:
    with path.open("w", encoding=encoding, newline="") as out:
        out.write(",".join(HEADER) + "\r\n")
        for i in range(rows):
            out.write(",".join(str(v) for v in _row(i)) + "\r\n")


def write_xlsx(path: Path, rows: int) -> None:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(HEADER)
    for i in range(rows):
        sheet.append(_row(i))
    book.save(path)


def measure(path: Path) -> dict[str, float]:
    """Run in a child process: read the whole file, report rows/s and peak RSS."""
    from bot.campaigns.rows import RowError, read_accounts

    started = time.perf_counter()
    records = errors = 0
    for _, item in read_accounts(path):
        if isinstance(item, RowError):
            errors += 1
        else:
            records += 1
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"records": records, "errors": errors, "seconds": seconds, "rss_mib": rss}


def cells_only(path: Path) -> dict[str, float]:
    """Both XLSX readers over the same file, cells only: rows/s and the peak RSS after each."""
    import openpyxl
    from python_calamine import CalamineWorkbook

    out: dict[str, float] = {}
    started = time.perf_counter()
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    n = sum(1 for _ in book.worksheets[0].iter_rows(values_only=True))
    book.close()
    out["openpyxl_rows_per_s"] = n / (time.perf_counter() - started)
    out["openpyxl_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
    n = sum(1 for _ in sheet.iter_rows())
    out["calamine_rows_per_s"] = n / (time.perf_counter() - started)
    out["calamine_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def child(what: str, path: Path) -> dict[str, float]:
    code = f"import sys; sys.argv = ['x', '--child', {what!r}, {str(path)!r}]; import runpy; "
    code += f"runpy.run_path({str(Path(__file__))!r}, run_name='__main__')"
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--calamine", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, path = args.child
        print(json.dumps(measure(Path(path)) if what == "read" else cells_only(Path(path))))
        return

    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "CSV UTF-8": Path(tmp) / "accounts-utf8.csv",
            "CSV GBK": Path(tmp) / "accounts-gbk.csv",
            "XLSX": Path(tmp) / "accounts.xlsx",
        }
        write_csv(files["CSV UTF-8"], args.rows, "utf-8")
        write_csv(files["CSV GBK"], args.rows, "gbk")
        write_xlsx(files["XLSX"], args.rows)
        print(f"{args.rows:,} rows per file")
        for label, path in files.items():
            r = child("read", path)
            size = path.stat().st_size / 2**20
            print(
                f"{label:10} {size:6.1f} MiB  {r['records']:,.0f} records {r['errors']:,.0f} errors"
                f"  {r['seconds']:6.2f} s  {r['records'] / r['seconds']:9,.0f} rows/s"
                f"  peak RSS {r['rss_mib']:.0f} MiB"
            )
        if args.calamine:
            c = child("cells", files["XLSX"])
            print(
                f"XLSX cells only: openpyxl read-only {c['openpyxl_rows_per_s']:,.0f} rows/s"
                f" (peak RSS {c['openpyxl_rss_mib']:.0f} MiB), python-calamine"
                f" {c['calamine_rows_per_s']:,.0f} rows/s"
                f" (peak RSS {c['calamine_rss_mib']:.0f} MiB)"
            )


if __name__ == "__main__":
    main()
