"""The comparison laid out as the papers print it, and the same baseline side by side across papers.

Built from the comparison rows alone (``comparison.json`` or ``.csv`` of ``normbench compare``), never from
runs, so it can be rebuilt at any time:

- **Paper tables**: one table per reference table (every distinct (paper, table) of the references, run or
  not), with the paper's own rows and columns in the order the reference file first names them. A cell shows
  ours against the paper's number and the verdict, e.g. ``5.31 ± 0.12 (paper 5.20) ✓``; a cell the paper
  has a number for but no run of this configuration stands for reads ``NOT RUN (paper 5.20)``; a cell the
  paper has no number for is empty. Written as ``<out>/<paper>/<table>.{md,csv,tex}``: Markdown, a tidy CSV
  (one line per cell: row, column, ours, spread, n, paper value, verdict, ...) and a LaTeX ``tabular`` with
  booktabs rules.
- **Baselines**: a baseline that several papers report (say ResNet-164 on CIFAR-100, its test error) is
  shown once with every paper's number side by side and ours. Entries are grouped by (baseline network,
  method, method options, optimizer, data set, metric). The baseline network is the name the papers use,
  whatever the layout: :func:`baseline_name` drops ``preact_`` and calls ``convnet`` ``plain``, so
  Zaeemzadeh's pre-activation bottleneck ResNet-164 and Oyedotun's ResNet-164 (He et al.'s other CIFAR
  layout) meet in one line, each entry naming its own registry model, since "ResNet-164" in two papers need
  not be one network. Accuracies are shown as errors (100 - accuracy) so that a paper printing one meets a
  paper printing the other. The data set, options and optimizer are read from the references
  (:func:`normbench.references.load_references`); a group is shown when entries of at least two papers fall
  in it. Entries without a model (cited rows whose network the transcription does not name) are never
  grouped. Written as ``<out>/baselines.{md,csv,tex}``, with a sentence when no group exists.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from normbench.references import Reference, load_references
from normbench.verdicts import DEVIATES, INCONCLUSIVE, NOT_RUN, PROXY, REPRODUCED
from normbench.verdicts import numbers as compare
from normbench.verdicts.formatting import number

MARKS = {REPRODUCED: "✓", DEVIATES: "✗", INCONCLUSIVE: "?", PROXY: PROXY, NOT_RUN: NOT_RUN}
TEX_MARKS = {REPRODUCED: r"$\checkmark$", DEVIATES: r"$\times$", INCONCLUSIVE: "?"}
LEGEND = (
    "Cells: ours (mean ± std over n runs; where the paper reports a best or max of n, that statistic of our "
    "runs, Boo_n being the expected best of n), the paper's number in brackets, then the verdict: "
    "✓ REPRODUCED, ✗ DEVIATES, ? INCONCLUSIVE (fewer than 2 runs), PROXY (our protocol differs from the "
    "paper's: never a reproduction), NOT RUN. An empty cell: the paper prints no "
    "number there that the references record. Tolerance rules: comparison.md."
)
CELL_FIELDS = [
    "paper",
    "table",
    "label",
    "row",
    "column",
    "id",
    "metric",
    "units",
    "statistic",
    "ours",
    "spread",
    "n",
    "diverged",
    "paper_value",
    "verdict",
    "cell",
    "protocol_differences",
]
BASELINE_FIELDS = [
    "group",
    "model",
    "method",
    "options",
    "optimizer",
    "dataset",
    "metric",
    "paper",
    "table",
    "label",
    "row",
    "column",
    "units",
    "statistic",
    "paper_value",
    "ours",
    "spread",
    "n",
    "diverged",
    "verdict",
    "cell",
]
INTEGER_UNITS = ("layers", "blocks", "layer index", "iterations", "epochs")
NUMERIC = ("ours", "ours_mean", "ours_std", "delta", "tolerance", "paper_value")


# ---------------------------------------------------------------- reading the comparison


def _number(x: Any) -> float | None:
    if x is None or x == "":
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """A comparison row with NaN/empty numbers as None, counts as int and the table key filled in."""
    r = dict(row)
    for key in NUMERIC:
        r[key] = _number(r.get(key))
    for key in ("n", "diverged"):
        r[key] = int(_number(r.get(key)) or 0)
    for key in ("protocol_differences", "rule", "units", "statistic"):
        r[key] = "" if r.get(key) is None or (isinstance(r.get(key), float)) else str(r[key])
    r["model"] = r.get("model") if isinstance(r.get("model"), str) and r.get("model") else None
    r["method"] = r.get("method") if isinstance(r.get("method"), str) else "none"
    r["label"] = str(r.get("label") or r["table"])
    r["table_key"] = r.get("table_key") or str(r["id"]).split("/", 2)[1]
    return r


def read_comparison(path: str | Path) -> list[dict[str, Any]]:
    """The rows of ``comparison.json`` (or ``comparison.csv``), in reference order."""
    path = Path(path)
    if path.suffix == ".csv":
        text = {"row": str, "column": str, "model": str, "method": str, "id": str}
        rows = pd.read_csv(path, dtype=text).to_dict("records")
    else:
        rows = json.loads(path.read_text(encoding="utf-8"))
    return [_clean(r) for r in rows]


def not_run_row(ref: Reference) -> dict[str, Any]:
    """A NOT RUN comparison row for a reference the comparison does not list (same columns as compare's)."""
    return _clean({**compare.not_run_row(ref), "table_key": ref.table})


# ---------------------------------------------------------------- cells


def digits(r: dict[str, Any]) -> int:
    """Decimals of a cell: none for integral counts (layers, epochs), else at least 2 and as many as the
    paper prints (up to 4), so 0.006 is not shown as 0.01."""
    value = r["paper_value"]
    if r["units"] in INTEGER_UNITS and (value is None or value == int(value)):
        ours = r["ours"]
        return 0 if ours is None or ours == int(ours) else 1
    if value is None:
        return 2
    text = repr(float(value))
    decimals = len(text.split(".")[1].rstrip("0")) if "." in text and "e" not in text else 0
    return min(max(2, decimals), 4)


def ours_text(r: dict[str, Any], tex: bool = False) -> str:
    """Our side of a cell: the statistic the paper's number is compared with, and its spread."""
    pm = r" $\pm$ " if tex else " ± "
    if r["verdict"] == NOT_RUN:
        return NOT_RUN
    if r["ours"] is None:
        if r["diverged"]:
            return f"{r['diverged']} diverged"
        return "-"
    d = digits(r)
    text = number(r["ours"], d)
    if r["statistic"] in ("best", "max", "median") and r["n"] > 1:
        estimator = r.get("estimator") if isinstance(r.get("estimator"), str) else ""
        label = estimator.split(",")[0] if estimator else f"{r['statistic']} of {r['n']}"
        text += f" ({label})"
    elif r["ours_std"] is not None and r["statistic"] not in ("std", "none"):
        text += pm + number(r["ours_std"], max(d, 2))
    if r["diverged"]:
        text += f", {r['diverged']} diverged"
    return text


def paper_text(r: dict[str, Any]) -> str:
    """The paper's number; '-' where it prints none ('-, diverges' where that means training diverged)."""
    if r["paper_value"] is None:
        return "-, diverges" if r.get("missing") == "diverged" else "-"
    return number(r["paper_value"], digits(r))


def cell_text(r: dict[str, Any], tex: bool = False) -> str:
    """``ours (paper X) mark``; ``NOT RUN (paper X)`` when no run stands for the cell."""
    paper = paper_text(r)
    mark = (TEX_MARKS if tex else MARKS).get(r["verdict"], r["verdict"])
    if r["verdict"] == NOT_RUN:
        return f"NOT RUN (paper {paper})"
    return f"{ours_text(r, tex)} (paper {paper}) {mark}"


def spread(r: dict[str, Any]) -> float | None:
    return r["ours_std"]


# ---------------------------------------------------------------- paper tables


@dataclass
class PaperTable:
    """One reference table in the paper's layout: rows and columns in first-seen order, cell rows by place."""

    paper: str
    table: str
    label: str
    rows: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    cells: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def add(self, r: dict[str, Any]) -> None:
        if r["row"] not in self.rows:
            self.rows.append(r["row"])
        if r["column"] not in self.columns:
            self.columns.append(r["column"])
        self.cells[(r["row"], r["column"])] = r

    def grid(self, tex: bool = False) -> tuple[list[str], list[list[str]]]:
        """Headers ('' then the paper's columns) and one list per paper row: its name, then its cells."""
        body = [[row, *(self._cell(row, c, tex) for c in self.columns)] for row in self.rows]
        return ["", *self.columns], body

    def _cell(self, row: str, column: str, tex: bool) -> str:
        r = self.cells.get((row, column))
        if r is None:
            return ""
        return r["cell"] if r.get("cell") and not tex else cell_text(r, tex)

    def verdicts(self) -> list[list[str]]:
        """The verdict of each cell of :meth:`grid`'s body ('' where the paper has no number)."""
        return [
            ["", *(self.cells[row, c]["verdict"] if (row, c) in self.cells else "" for c in self.columns)]
            for row in self.rows
        ]

    def protocol_differences(self) -> list[str]:
        found: list[str] = []
        for r in self.cells.values():
            for d in filter(None, (x.strip() for x in r["protocol_differences"].split(";"))):
                if d not in found:
                    found.append(d)
        return found

    def ran(self) -> int:
        return sum(r["verdict"] != NOT_RUN for r in self.cells.values())


def layout(rows: list[dict[str, Any]]) -> list[PaperTable]:
    """Every (paper, table) of ``rows``, in first-seen order, each in the paper's own rows and columns."""
    tables: dict[tuple[str, str], PaperTable] = {}
    for r in rows:
        key = (r["paper"], r["table_key"])
        if key not in tables:
            tables[key] = PaperTable(r["paper"], r["table_key"], r["label"])
        tables[key].add(r)
    return list(tables.values())


def tex_escape(text: str) -> str:
    out = []
    for ch in str(text):
        if ch == "\\":
            out.append(r"\textbackslash{}")
        elif ch in "&%$#_{}":
            out.append("\\" + ch)
        elif ch == "~":
            out.append(r"\textasciitilde{}")
        elif ch == "^":
            out.append(r"\textasciicircum{}")
        else:
            out.append(ch)
    return "".join(out)


def to_latex(headers: list[str], body: list[list[str]], comment: list[str], raw_cells: bool = False) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs,amssymb}``); ``raw_cells`` keeps cell LaTeX."""
    esc = tex_escape
    cell = (lambda c: c) if raw_cells else esc
    lines = [f"% {c}" for c in comment]
    lines += [
        "\\begin{tabular}{" + "l" * len(headers) + "}",
        r"\toprule",
        " & ".join(esc(h) for h in headers) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join([esc(row[0]), *(cell(c) for c in row[1:])]) + r" \\" for row in body]
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def _tex_cell(text: str) -> str:
    """Escape a TeX-formatted cell but its math parts ($...$)."""
    parts = text.split("$")
    return "$".join(p if i % 2 else tex_escape(p) for i, p in enumerate(parts))


def cell_records(table: PaperTable) -> list[dict[str, Any]]:
    """The tidy CSV lines of one table: one per cell that has a paper number, in row-major paper order."""
    out = []
    for row in table.rows:
        for col in table.columns:
            r = table.cells.get((row, col))
            if r is None:
                continue
            out.append(
                {
                    "paper": table.paper,
                    "table": table.table,
                    "label": table.label,
                    "row": row,
                    "column": col,
                    "id": r["id"],
                    "metric": r.get("metric", ""),
                    "units": r["units"],
                    "statistic": r["statistic"],
                    "ours": r["ours"],
                    "spread": spread(r),
                    "n": r["n"],
                    "diverged": r["diverged"],
                    "paper_value": r["paper_value"],
                    "verdict": r["verdict"],
                    "cell": cell_text(r),
                    "protocol_differences": r["protocol_differences"],
                }
            )
    return out


def write_csv(path: Path, fields: list[str], records: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for rec in records:
            w.writerow({k: "" if rec.get(k) is None else rec.get(k) for k in fields})


def write_paper_table(table: PaperTable, out_dir: str | Path) -> list[Path]:
    """``<out_dir>/<paper>/<table>.{md,csv,tex}`` of one table."""
    folder = Path(out_dir) / table.paper
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / table.table
    headers, body = table.grid()
    diffs = table.protocol_differences()
    title = f"{table.paper} {table.label}"
    md = [
        f"## {title}",
        "",
        f"{table.ran()} of {len(table.cells)} numbers compared. {LEGEND}",
    ]
    if diffs:
        md += ["", "Protocol differences (PROXY): " + "; ".join(diffs) + "."]
    md += ["", tabulate(body, headers=headers, tablefmt="github"), ""]
    stem.with_suffix(".md").write_text("\n".join(md), encoding="utf-8")
    write_csv(stem.with_suffix(".csv"), CELL_FIELDS, cell_records(table))
    tex_headers, tex_body = table.grid(tex=True)
    tex_body = [[row[0], *(_tex_cell(c) for c in row[1:])] for row in tex_body]
    legend = LEGEND.replace("✓", "$\\checkmark$").replace("✗", "$\\times$")
    comment = [f"{title}: ours vs the paper (normbench paper-tables).", legend]
    stem.with_suffix(".tex").write_text(
        to_latex(tex_headers, tex_body, comment, raw_cells=True), encoding="utf-8"
    )
    return [stem.with_suffix(f".{ext}") for ext in ("md", "csv", "tex")]


def read_paper_table(path: str | Path) -> PaperTable:
    """A table back from its tidy CSV (what the report shows); the cell text is re-derived from the CSV."""
    df = pd.read_csv(path, dtype={"row": str, "column": str}, keep_default_na=False)
    recs = df.to_dict("records")
    p = Path(path)
    table = PaperTable(p.parent.name, p.stem, str(recs[0]["label"]) if recs else p.stem)
    for rec in recs:
        table.add(
            _clean(
                {
                    **rec,
                    "table": rec["label"],
                    "table_key": rec["table"],
                    "ours_std": rec["spread"],
                }
            )
        )
    return table


# ---------------------------------------------------------------- baselines across papers


def _options_text(options: Any) -> str:
    return json.dumps(options, sort_keys=True) if options else ""


ERROR_OF = {"test_accuracy": "final_test_error", "train_accuracy": "final_train_error"}


def baseline_name(model: str) -> str:
    """The network as the papers name it across layouts: ``preact_resnet164`` and ``resnet164`` are both
    ResNet-164 (``resnet164``), ``convnet164`` and ``plain164`` both Plain-164 (``plain164``)."""
    return re.sub(r"(^|_)preact_", r"\1", model).replace("convnet", "plain")


def as_error(r: dict[str, Any]) -> dict[str, Any]:
    """A comparison row with an accuracy metric restated as the error 100 - accuracy (paper and ours)."""
    if r["metric"] not in ERROR_OF:
        return r
    flip = {k: None if r[k] is None else round(100.0 - r[k], 10) for k in ("paper_value", "ours")}
    return {**r, **flip, "metric": ERROR_OF[r["metric"]], "column": f"100 - {r['column']}"}


def baseline_groups(
    rows: list[dict[str, Any]], references: list[Reference] | None = None, min_papers: int = 2
) -> list[dict[str, Any]]:
    """Groups of comparison rows that report the same baseline (see the module docstring).

    The data set, options and optimizer of a row come from its reference (matched by id) and else from the
    row itself. Returns dicts with the key fields and ``entries`` (the rows, accuracies restated as errors),
    in first-seen order.
    """
    by_id = {ref.id: ref for ref in (load_references() if references is None else references)}
    groups: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        ref = by_id.get(r["id"])
        if not r["model"]:
            continue
        r = as_error(r)
        dataset = ref.dataset if ref else r.get("dataset")
        options = _options_text(ref.options if ref else r.get("options"))
        optimizer = (ref.optimizer if ref else r.get("optimizer")) or ""
        key = (baseline_name(r["model"]), r["method"], options, optimizer, dataset, r["metric"])
        g = groups.setdefault(
            key,
            {
                "model": key[0],
                "method": r["method"],
                "options": options,
                "optimizer": optimizer,
                "dataset": dataset or "",
                "metric": r["metric"],
                "entries": [],
            },
        )
        g["entries"].append(r)
    return [g for g in groups.values() if len({e["paper"] for e in g["entries"]}) >= min_papers]


def baseline_grid(groups: list[dict[str, Any]], tex: bool = False) -> tuple[list[str], list[list[str]]]:
    """One line per group: its key, each paper's number(s) in that paper's column, ours, the papers' range."""
    papers = list(dict.fromkeys(e["paper"] for g in groups for e in g["entries"]))
    headers = ["model", "method", "data set", "metric", *papers, "ours", "papers' range"]
    body = []
    for g in groups:
        method = g["method"] + (f" {g['options']}" if g["options"] else "")
        method += f" ({g['optimizer']})" if g["optimizer"] else ""
        cells = []
        for paper in papers:
            mine = [e for e in g["entries"] if e["paper"] == paper]
            cells.append(
                "; ".join(f"{paper_text(e)} ({e['label']}, {e['column']}; {e['model']})" for e in mine)
                if mine
                else ""
            )
        marks = TEX_MARKS if tex else MARKS
        texts = {id(e): f"{ours_text(e, tex)} {marks.get(e['verdict'], e['verdict'])}" for e in g["entries"]}
        ran = [e for e in g["entries"] if e["verdict"] != NOT_RUN]
        if not ran:
            ours = [NOT_RUN]
        elif len(ran) == len(g["entries"]) and len({texts[id(e)] for e in ran}) == 1:
            ours = [texts[id(ran[0])]]
        else:  # runs stand for each paper's table separately: say whose
            ours = list(dict.fromkeys(f"{texts[id(e)]} ({e['paper']} {e['label']})" for e in ran))
        values = [e["paper_value"] for e in g["entries"] if e["paper_value"] is not None]
        rng = number(max(values) - min(values)) if len(values) > 1 else "-"
        body.append([g["model"], method, g["dataset"], g["metric"], *cells, "; ".join(ours), rng])
    return headers, body


def baseline_records(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "group": i,
            **{k: g[k] for k in ("model", "method", "options", "optimizer", "dataset", "metric")},
            "paper": e["paper"],
            "table": e["table_key"],
            "label": e["label"],
            "row": e["row"],
            "column": e["column"],
            "units": e["units"],
            "statistic": e["statistic"],
            "paper_value": e["paper_value"],
            "ours": e["ours"],
            "spread": spread(e),
            "n": e["n"],
            "diverged": e["diverged"],
            "verdict": e["verdict"],
            "cell": cell_text(e),
        }
        for i, g in enumerate(groups, 1)
        for e in g["entries"]
    ]


def read_baselines(path: str | Path) -> list[dict[str, Any]]:
    """The groups of a ``baselines.csv`` (as :func:`baseline_groups` returns them), for the report."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    groups: dict[str, dict[str, Any]] = {}
    for rec in df.to_dict("records"):
        g = groups.setdefault(
            rec["group"],
            {k: rec[k] for k in ("model", "method", "options", "optimizer", "dataset", "metric")}
            | {"entries": []},
        )
        entry = {
            **rec,
            "id": f"{rec['paper']}/{rec['table']}",
            "table": rec["label"],
            "table_key": rec["table"],
        }
        g["entries"].append(_clean({**entry, "ours_std": rec["spread"]}))
    return list(groups.values())


BASELINES_INTRO = (
    "The same baseline (network as the papers name it, method and its options, optimizer, data set, metric) "
    "as reported by several papers, each paper's number in its column (table, column; the registry network "
    "that stands for it: 'ResNet-164' need not be one layout in two papers), ours beside them, and the range "
    "of the papers' numbers (papers often cite one another's baselines; a range above 0 means they "
    "disagree). Accuracies are restated as errors (100 - accuracy)."
)
NO_BASELINES = (
    "No baseline (network as the papers name it, method and its options, optimizer, data set, metric) has "
    "reference numbers in "
    "two or more papers. Cited rows whose network the references do not name are not grouped."
)


def write_baselines(groups: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """``<out_dir>/baselines.{md,csv,tex}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    headers, body = baseline_grid(groups)
    md = ["## Same baseline across papers", "", BASELINES_INTRO if groups else NO_BASELINES, ""]
    if groups:
        md += [tabulate(body, headers=headers, tablefmt="github"), ""]
    (out_dir / "baselines.md").write_text("\n".join(md), encoding="utf-8")
    write_csv(out_dir / "baselines.csv", BASELINE_FIELDS, baseline_records(groups))
    tex_headers, tex_body = baseline_grid(groups, tex=True)
    tex_body = [[*map(tex_escape, row[:-2]), _tex_cell(row[-2]), tex_escape(row[-1])] for row in tex_body]
    comment = [
        "Same baseline across papers (normbench paper-tables).",
        BASELINES_INTRO if groups else NO_BASELINES,
    ]
    (out_dir / "baselines.tex").write_text(
        to_latex(tex_headers, tex_body, comment, raw_cells=True),
        encoding="utf-8",
    )
    return [out_dir / f"baselines.{ext}" for ext in ("md", "csv", "tex")]


# ---------------------------------------------------------------- everything


def planned_tables(references: list[Reference] | None = None) -> list[tuple[str, str]]:
    """Every (paper, table key) of the references, in file order: the paper tables a comparison gets."""
    refs = load_references() if references is None else references
    return list(dict.fromkeys((r.paper, r.table) for r in refs))


def planned_files(
    out_dir: str, references: list[Reference] | None = None, baselines: bool = True
) -> list[str]:
    """The files :func:`write_all` writes into ``out_dir`` (the workflow's outputs, known before any run);
    without ``baselines.*`` when ``baselines`` is false."""
    files = [
        f"{out_dir}/{p}/{t}.{ext}" for p, t in planned_tables(references) for ext in ("md", "csv", "tex")
    ]
    return files + ([f"{out_dir}/baselines.{ext}" for ext in ("md", "csv", "tex")] if baselines else [])


def write_all(
    comparison: str | Path | list[dict[str, Any]],
    out_dir: str | Path,
    references: list[Reference] | None = None,
) -> list[Path]:
    """Paper tables and baselines of a comparison (a file, or rows as ``comparison.json`` holds them).

    Every table of ``references`` (default: every shipped reference file) gets its files, also when the
    comparison lacks it (its cells then read NOT RUN).
    """
    refs = load_references() if references is None else references
    rows = (
        read_comparison(comparison)
        if isinstance(comparison, (str, Path))
        else [_clean(r) for r in comparison]
    )
    seen = {r["id"] for r in rows}
    missing = {ref.id: ref.missing for ref in refs}
    for r in rows:
        r["missing"] = missing.get(r["id"])
    rows += [not_run_row(ref) for ref in refs if ref.id not in seen]
    written: list[Path] = []
    for table in layout(rows):
        written += write_paper_table(table, out_dir)
    written += write_baselines(baseline_groups(rows, refs), out_dir)
    return written
