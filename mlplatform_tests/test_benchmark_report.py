"""The benchmarks page (docs/benchmarks.md) as `make bench` writes it, from given JSON lines:
no benchmark runs here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks import report

MACHINE = {
    "cpus": 2,
    "usable_cpus": 2,
    "cpu_model": "Test CPU @ 2.0GHz",
    "memory_gib": 7.8,
    "os": "Linux-6.1-x86_64-with-glibc2.36",
    "python": "3.11.7",
}
PROMOTION_LINE = json.dumps(
    {
        "benchmark": "promotion",
        "repeat": 20,
        "promote": {"median_s": 0.1134, "p90_s": 0.2},
        "rollback": {"median_s": 0.0971, "p90_s": 0.48},
        "rollback_meets_design": True,
        "cpu_count": 2,
        "load_avg_1m": 8.5,
    }
)
ROWS_LINE = json.dumps(
    {
        "benchmark": "training_rows",
        "tickers": 2000,
        "results": [
            {"cap": None, "rows": 5_090_000, "accuracy": 0.55571, "cpu_s": 951.2},
            {"cap": 250_000, "rows": 250_000, "accuracy": 0.5557, "cpu_s": 60.04},
        ],
        "python": "3.11.7",
    }
)


def _record(name: str, line: str, date: str = "2026-12-05") -> report.Record:
    return report.Record(name, date, MACHINE, report.final_json(f"progress...\n{line}\n"))


def test_every_listed_benchmark_exists_and_every_benchmark_is_listed() -> None:
    scripts = {path.stem for path in (report.ROOT / "benchmarks").glob("bench_*.py")}
    assert set(report.BENCHMARKS) == scripts


def test_the_final_json_line_is_the_last_non_empty_line() -> None:
    assert report.final_json('a table\n{"x": 1}\n\n') == {"x": 1}
    with pytest.raises(ValueError):
        report.final_json("no json at the end\n")
    with pytest.raises(ValueError):
        report.final_json("[1, 2]\n")


def test_the_page_states_machine_and_date_once_then_a_section_per_benchmark() -> None:
    records = {
        "bench_promotion": _record("bench_promotion", PROMOTION_LINE),
        "bench_training_rows": _record("bench_training_rows", ROWS_LINE),
    }
    page = report.render_page(records, MACHINE)
    shown = re.sub(r"<!-- record .* -->", "", page)  # what a reader sees
    assert shown.count("Test CPU @ 2.0GHz") == 1 and shown.count("2026-12-05") == 1
    assert "- Date: 2026-12-05" in page
    assert "2 CPUs; Test CPU @ 2.0GHz; 7.8 GiB memory" in page
    for name in report.BENCHMARKS:
        assert f"## {name}" in page
        assert f"`python -m benchmarks.{name}`" in page
    # Figures as tables under human labels, nested objects flattened, the machine and its load
    # never per section.
    assert "| rollback: median (s) | 0.0971 |" in page
    assert "| rollback p90 within this design's target | yes |" in page
    assert "rollback_meets_design" not in shown and "median_s" not in shown
    assert "load_avg" not in shown and "cpu_count" not in shown and "| python |" not in shown
    # A list of objects is its own table, a row per item.
    assert "| cap | rows | accuracy | cpu (s) |" in page
    assert "| — | 5090000 | 0.5557 | 951.2 |" in page
    assert "| 250000 | 250000 | 0.5557 | 60.04 |" in page
    # The benchmarks without figures say how to get them, and nothing else.
    gate = page.split("## bench_gate")[1].split("## ")[0]
    assert report.TO_FILL in gate and "|" not in gate


def test_sections_from_another_machine_are_not_kept() -> None:
    other = {**MACHINE, "cpu_model": "Another CPU"}
    old = report.Record("bench_promotion", "2026-11-01", other, json.loads(PROMOTION_LINE))
    page = report.render_page({"bench_promotion": old}, MACHINE)
    assert "0.0971" not in page and "Another CPU" not in page
    assert "- Date: not measured yet" in page


def test_a_page_reads_back_its_records_for_the_next_partial_run() -> None:
    tricky = json.dumps({"note": "a -- b <!-- c -->", "value": -1.5})
    records = {
        "bench_promotion": _record("bench_promotion", PROMOTION_LINE, "2026-12-04"),
        "bench_drift": _record("bench_drift", tricky, "2026-12-05"),
        "bench_gate": report.Record("bench_gate", "2026-12-05", MACHINE, None, "exited with 1"),
    }
    page = report.render_page(records, MACHINE)
    assert "- Date: 2026-12-04 to 2026-12-05" in page
    assert "Not measured: the run exited with 1." in page
    again = report.read_records(page)
    assert again == records
    assert report.render_page(again, MACHINE) == page


def test_omitted_detail_and_odd_values() -> None:
    line = {
        "signal": {"promotion_rate": 0.95},
        "markets": {"signal": [{"seed": 1}]},
        "n": None,
        "growth_exponent": {},
        "stop": "",
        "ok": False,
    }
    lines = report.render_figures(line, omit=("markets",))
    assert lines == [
        "| figure | value |",
        "|---|---|",
        "| signal: promotion rate | 0.95 |",
        "| n | — |",
        f"| {report.LABELS['growth_exponent']} | — |",
        "| stop | — |",
        "| ok | no |",
    ]
    assert report.number(float("nan")) == "—" and report.number([]) == "—"
    assert report.number([1, 2.5]) == "1, 2.5"
    assert report.number("a|b") == "a|b" and report._cell("a|b") == "a\\|b"


def test_labels_keep_units_and_read_unmapped_keys_as_words() -> None:
    assert report.label(("wall_s",)) == "wall time (s)"
    assert report.label(("promote", "p90_s")) == "promote: 90th percentile (s)"
    assert report.label(("home_bytes",)) == "home (bytes)"
    assert report.label(("median_detection_delay_days",)) == "median detection delay days"
    assert report.label(("steps_s", "raw_prices")) == "step time (s): raw prices"
    assert report.label(("rows", "trend 1.5x")) == "rows: trend 1.5x"  # a dot inside a key
    for key, text in report.LABELS.items():
        assert text and "_" not in text, key


def test_a_wide_list_of_objects_is_turned_a_row_per_field() -> None:
    fields = {f"f{i}_s": i for i in range(report.WIDEST_TABLE)}
    line = {"sizes": [{"tickers": 500, **fields}, {"tickers": 2000, **fields, "ok": True}]}
    lines = report.render_figures(line)
    assert lines[:5] == ["", "By market size:", "", "| tickers | 500 | 2000 |", "|---|---|---|"]
    assert "| f0 (s) | 0 | 0 |" in lines and "| ok | — | yes |" in lines


def test_render_only_rewrites_the_page_from_its_records_and_runs_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    records = {"bench_promotion": _record("bench_promotion", PROMOTION_LINE)}
    old = report.render_page(records, MACHINE).replace("| figure | value |", "| old | layout |")
    page = tmp_path / "benchmarks.md"
    page.write_text(old)
    monkeypatch.setattr(report, "PAGE", page)
    monkeypatch.setattr(report, "machine", lambda: {**MACHINE, "cpu_model": "Another CPU"})
    monkeypatch.setattr(report, "run_benchmark", pytest.fail)  # nothing may run
    assert report.main(["--render-only"]) == 0
    assert page.read_text() == report.render_page(records, MACHINE)  # the records' machine
    assert report.read_records(page.read_text()) == records  # every figure as it was
    with pytest.raises(SystemExit):
        report.main(["--render-only", "--only", "bench_drift"])


def test_only_accepts_listed_benchmarks_and_no_other_arguments() -> None:
    with pytest.raises(SystemExit):
        report.main(["--only", "bench_nonexistent"])
    with pytest.raises(SystemExit):
        report.main(["--trials", "3"])
