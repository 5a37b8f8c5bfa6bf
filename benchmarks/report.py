"""Run the benchmarks and write docs/benchmarks.md from each one's final JSON line.

    .venv/bin/python -m benchmarks.report                      # every benchmark (make bench)
    .venv/bin/python -m benchmarks.report --only bench_drift,bench_promotion
    .venv/bin/python -m benchmarks.report --render-only         # rewrite the page, run nothing

Each benchmark in BENCHMARKS runs as documented (`python -m benchmarks.<name>`, its default
settings, from the repository root, on a temporary home folder and model export) and ends by
printing one JSON object; its output streams through. The page states the machine and the date
once, then one section per benchmark with its figures as tables. With `--only`, the other
sections keep the figures the page already holds when they were measured on this machine, and
say "run `make bench` to fill" otherwise. The figures of each section are kept in the page itself
(an HTML comment), so the page is the only file this writes. `--render-only` runs no benchmark:
it rewrites the page from the figures it holds, on the machine they were measured on (after a
change to how figures are shown; no figure changes).

Rows are labelled from LABELS (a key not there reads as itself, underscores as spaces and a unit
suffix such as `_s` as "(s)"); yes/no stands for true/false and "—" for a missing or empty value.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "benchmarks.md"

# The benchmarks the page reports, in its order: each is benchmarks/<name>.py.
BENCHMARKS = (
    "bench_drift",
    "bench_gate",
    "bench_live",
    "bench_pipeline",
    "bench_prior",
    "bench_promotion",
    "bench_retention",
    "bench_slices",
    "bench_training_rows",
    "bench_tuning",
    "bench_scaleout",
)
# Per-item detail too long for the page (the benchmark's own output prints it).
OMIT = {"bench_gate": ("markets",)}
# The machine and its load are stated once at the top, never per benchmark.
MACHINE_KEYS = frozenset(
    {"benchmark", "cpu_count", "cpus", "python", "load_avg_1m", "load_avg_1m_end"}
)
TO_FILL = "Not measured on this machine yet: run `make bench` to fill."
# How the page names a JSON key; a nested figure joins its keys' labels with ": ".
LABELS = {
    "backtest_s": "backtest without slices (s)",
    "backtest_with_slices_s": "backtest with slices (s)",
    "design_rollback_target_s": "rollback target of this design (s)",
    "figured_slices": "slices with figures (enough rows and dates)",
    "growth_exponent": "growth exponent k (time ∝ bars^k; needs two sizes)",
    "lightgbm_s": "inside LightGBM (s)",
    "meets_targets": "meets target",
    "model_txt_bytes": "model.txt size (bytes)",
    "nfr_010_rollback_target_s": "rollback target of NFR-010 (s)",
    "optuna_s": "inside Optuna (s)",
    "overhead_s": "outside LightGBM and Optuna (s)",
    "overhead_share": "share of the wall time outside LightGBM and Optuna",
    "p90_s": "90th percentile (s)",
    "peak_rss": "peak memory",
    "peak_rss_mib": "peak memory, RSS (MiB)",
    "register_median_s": "register, median (s)",
    "repeat": "repetitions",
    "rollback_meets_design": "rollback p90 within this design's target",
    "rollback_meets_nfr_010": "rollback p90 within NFR-010's target",
    "sizes": "by market size",
    "slice_keys_s": "slice keys, regimes and ticker groups (s)",
    "slicing_s": "slicing in total (s)",
    "slicing_share_of_backtest": "slicing as a share of the backtest",
    "steps_outside_ml_s": "step time outside LightGBM and Optuna (s)",
    "steps_s": "step time (s)",
    "success": "run succeeded",
    "trees": "trees per model",
    "versions": "registry versions",
    "wall": "wall time",
    "wall_s": "wall time (s)",
    "warm_stores": "stores warmed up first",
    "window_rows": "rows in the evaluation window",
}
UNITS = {"_s": "s", "_mib": "MiB", "_gib": "GiB", "_bytes": "bytes", "_kb": "kB"}
# A list of objects with more columns than this is shown turned: a row per field.
WIDEST_TABLE = 8
_RECORD = re.compile(r"^<!-- record (\S+) (.*) -->$", re.MULTILINE)


@dataclass(frozen=True)
class Record:
    """One benchmark's final JSON line, with when and where it was measured."""

    name: str
    date: str  # YYYY-MM-DD, UTC
    machine: dict[str, Any]
    figures: dict[str, Any] | None  # None: the run failed
    error: str | None = None

    def to_comment(self) -> str:
        # "--" ends an HTML comment; it can only occur inside a JSON string, where "-\u002d"
        # reads back the same.
        body = json.dumps(
            {
                "date": self.date,
                "machine": self.machine,
                "figures": self.figures,
                "error": self.error,
            }
        ).replace("--", "-\\u002d")
        return f"<!-- record {self.name} {body} -->"


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPUs, their model, memory, OS, Python."""
    model = platform.processor() or platform.machine()
    memory_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    if memory_gib is None:
        try:
            memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
        except (ValueError, OSError, AttributeError):
            memory_gib = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpus": os.cpu_count(),
        "usable_cpus": usable,
        "cpu_model": model,
        "memory_gib": memory_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def final_json(output: str) -> dict[str, Any]:
    """The JSON object on the last non-empty line of a benchmark's output."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the benchmark printed nothing")
    value = json.loads(lines[-1])
    if not isinstance(value, dict):
        raise ValueError(f"the last line is not a JSON object: {lines[-1][:200]}")
    return value


def run_benchmark(name: str, today: str, where: dict[str, Any]) -> Record:
    """Run `python -m benchmarks.<name>` with its defaults, streaming its output, and keep its
    final JSON line."""
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
        env = {
            **os.environ,
            "MLPLATFORM_HOME": str(Path(tmp) / "home"),
            "MLPLATFORM_MODELS_DIR": str(Path(tmp) / "models"),
            "PYTHONUNBUFFERED": "1",  # its progress shows as it happens
        }
        print(f"\n$ python -m benchmarks.{name}", flush=True)
        process = subprocess.Popen(
            [sys.executable, "-m", f"benchmarks.{name}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            sys.stdout.write(line)
            lines.append(line)
        code = process.wait()
    output = "".join(lines)
    if code != 0:
        last = next((ln.strip() for ln in reversed(lines) if ln.strip()), "no output")
        return Record(name, today, where, None, f"exited with code {code}: {last[:300]}")
    try:
        return Record(name, today, where, final_json(output))
    except ValueError as exc:
        return Record(name, today, where, None, f"no final JSON line ({exc})")


def read_records(page: str) -> dict[str, Record]:
    """The records a page written by this script holds, by benchmark."""
    records = {}
    for match in _RECORD.finditer(page):
        try:
            data = json.loads(match.group(2))
            records[match.group(1)] = Record(
                match.group(1), data["date"], data["machine"], data["figures"], data.get("error")
            )
        except (ValueError, KeyError, TypeError):
            continue
    return records


def describe(name: str) -> str:
    """The first paragraph of the benchmark's docstring, on one line."""
    path = ROOT / "benchmarks" / f"{name}.py"
    try:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    except (OSError, SyntaxError):
        return ""
    return " ".join(doc.split("\n\n")[0].split())


def label(path: Sequence[str]) -> str:
    """A figure's row label: each key's LABELS entry, else the key with underscores as spaces
    and a unit suffix in brackets (`wall_s` -> "wall (s)"), joined with ": "."""
    return ": ".join(_key_label(key) for key in path)


def _key_label(key: str) -> str:
    if key in LABELS:
        return LABELS[key]
    for suffix, unit in UNITS.items():
        if key.endswith(suffix) and len(key) > len(suffix):
            return f"{key[: -len(suffix)].replace('_', ' ')} ({unit})"
    return key.replace("_", " ")


def number(value: Any) -> str:
    """A figure as the page shows it: "—" for a missing or empty value."""
    if value is None or (isinstance(value, str | list | tuple | Mapping) and not value):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return "—"
        if abs(value) >= 1000:
            return f"{value:.0f}"
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(number(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {number(v)}" for k, v in value.items())
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


Keys = tuple[str, ...]  # the keys leading to a figure


def _flatten(
    value: Mapping[str, Any], prefix: Keys, figures: list[tuple[Keys, Any]], tables: list
) -> None:
    """Scalars (and lists of scalars) as figures by their keys; lists of objects as their own
    tables."""
    for key, item in value.items():
        if key in MACHINE_KEYS:
            continue
        path = (*prefix, key)
        if isinstance(item, Mapping) and item:
            _flatten(item, path, figures, tables)
        elif _is_rows(item):
            tables.append((path, item))
        else:
            figures.append((path, item))


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_figures(figures: Mapping[str, Any], omit: Iterable[str] = ()) -> list[str]:
    """A benchmark's JSON object as Markdown tables: one of its figures, then one per list of
    objects in it (a row per item, or a row per field when the items have many fields)."""
    skipped = set(omit)
    flat: list[tuple[Keys, Any]] = []
    tables: list[tuple[Keys, list]] = []
    _flatten({k: v for k, v in figures.items() if k not in skipped}, (), flat, tables)
    lines: list[str] = []
    if flat:
        lines += _table(("figure", "value"), ((label(keys), number(value)) for keys, value in flat))
    for keys, items in tables:
        rows = []
        columns: list[Keys] = []
        for item in items:
            row: list[tuple[Keys, Any]] = []
            _flatten(item, (), row, [])  # lists of objects inside a row are shown flat
            rows.append(dict(row))
            columns += [column for column, _ in row if column not in columns]
        title = label(keys)
        lines += ["", f"{title[:1].upper()}{title[1:]}:", ""]
        cells = [[number(r.get(c)) for c in columns] for r in rows]
        if len(columns) <= WIDEST_TABLE:
            lines += _table([label(c) for c in columns], cells)
        else:  # turned: the first field heads the columns, a row per other field
            header = [label(columns[0]), *(row[0] for row in cells)]
            lines += _table(
                header,
                ([label(c), *(row[i] for row in cells)] for i, c in enumerate(columns) if i),
            )
    return lines


def _machine_line(where: Mapping[str, Any]) -> str:
    usable = where.get("usable_cpus")
    cpus = f"{where.get('cpus')} CPUs" + (
        f" ({usable} usable)" if usable not in (None, where.get("cpus")) else ""
    )
    memory = where.get("memory_gib")
    parts = [
        cpus,
        str(where.get("cpu_model") or "unknown model"),
        f"{number(memory)} GiB memory" if memory is not None else "memory unknown",
        str(where.get("os")),
        f"Python {where.get('python')}",
    ]
    return "; ".join(parts)


def render_page(
    records: Mapping[str, Record],
    where: Mapping[str, Any],
    names: Sequence[str] = BENCHMARKS,
) -> str:
    """docs/benchmarks.md: the machine and the dates once, then a section per benchmark."""
    kept = {n: r for n, r in records.items() if n in names and r.machine == dict(where)}
    dates = sorted({r.date for r in kept.values()})
    if not dates:
        when = "not measured yet"
    elif len(dates) == 1:
        when = dates[0]
    else:
        when = f"{dates[0]} to {dates[-1]}"
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by `make bench` (python -m benchmarks.report) from each benchmark's final "
        "JSON line. Do not edit by hand. -->",
        "",
        "Every figure below comes from `make bench`, which runs each benchmark with its default "
        "settings (`python -m benchmarks.<name>` from the repository root) and keeps the JSON "
        "object it prints last; `make bench ONLY=bench_drift,bench_promotion` runs some and keeps "
        "the others. A benchmark's own output prints the same figures beside its baseline and "
        "targets.",
        "",
        f"- Machine: {_machine_line(where)}",
        f"- Date: {when}",
        "",
    ]
    for name in names:
        lines += [f"## {name}", ""]
        about = describe(name)
        if about:
            lines += [about, ""]
        lines += [f"`python -m benchmarks.{name}`", ""]
        record = kept.get(name)
        if record is None:
            lines += [TO_FILL, ""]
            continue
        if record.figures is None:
            lines += [f"Not measured: the run {record.error}.", "", record.to_comment(), ""]
            continue
        lines += render_figures(record.figures, OMIT.get(name, ()))
        lines += ["", record.to_comment(), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def recorded_machine(records: Mapping[str, Record]) -> dict[str, Any] | None:
    """The machine of the latest record (the one a page states), or None without records."""
    latest = max(records.values(), key=lambda r: r.date, default=None)
    return None if latest is None else latest.machine


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated benchmarks to run (default: all of {', '.join(BENCHMARKS)})",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run no benchmark: rewrite the page from the figures it holds",
    )
    args = parser.parse_args(argv)
    if args.render_only:
        if args.only:
            parser.error("--render-only runs no benchmark; leave out --only")
        records = read_records(PAGE.read_text()) if PAGE.exists() else {}
        PAGE.write_text(render_page(records, recorded_machine(records) or machine()))
        print(f"wrote {PAGE} from the figures it holds", flush=True)
        return 0
    selected = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in selected if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    where = machine()
    today = datetime.now(UTC).date().isoformat()
    records = read_records(PAGE.read_text()) if PAGE.exists() else {}
    failed = []
    for name in selected:
        record = run_benchmark(name, today, where)
        records[name] = record
        if record.figures is None:
            failed.append(f"{name}: {record.error}")
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(render_page(records, where))
    print(f"\nwrote {PAGE.relative_to(ROOT)}", flush=True)
    for line in failed:
        print(f"not measured: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
