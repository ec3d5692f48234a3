"""The report: one self-contained HTML page a person opens first.

It is built from files the DAG wrote (comparison CSV, tables CSV, figure PNGs, run provenance), never from
variables in memory: summary of verdicts per paper, the comparison per paper, then each experiment's table
and figures. Figures are embedded (base64) so the page can be mailed or attached as it is.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from normbench.compare import display_rows, verdict_counts
from normbench.tables import display_frame

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; }
th { background: #f0f0f0; }
.REPRODUCED { background: #d4f7d4; } .DEVIATES { background: #fbd0d0; } .INCONCLUSIVE { background: #fdf1c7; }
.PROXY { background: #dde8fb; } .NOTRUN { color: #888; }
.banner { background: #dde8fb; border-left: 5px solid #4a78c2; padding: 0.6em 1em; margin: 1em 0; }
img { max-width: 100%; border: 1px solid #eee; }
code { background: #f5f5f5; padding: 0 3px; }
"""


def _table_html(headers: list[str], rows: list[list[str]], verdict_col: int | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in headers) + "</tr>"]
    for row in rows:
        cls = f' class="{str(row[verdict_col]).replace(" ", "")}"' if verdict_col is not None else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    return "\n".join(out + ["</table>"])


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<p><img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}"></p>'


def provenance_summary(runs_dir: Path) -> dict:
    provs = [json.loads(p.read_text()) for p in sorted(runs_dir.rglob("provenance.json"))]
    if not provs:
        return {}
    shas = sorted(
        {(p["git"]["sha"] or "unknown")[:10] + (" (dirty)" if p["git"]["dirty"] else "") for p in provs}
    )
    return {
        "runs": len(provs),
        "code": ", ".join(shas),
        "devices": ", ".join(sorted({p["device_name"] for p in provs})),
        "torch": ", ".join(sorted({p["versions"]["torch"] for p in provs})),
        "train hours": f"{sum(p['train_seconds'] for p in provs) / 3600:.3f}",
    }


def build_report(results_dir: str | Path, out: str | Path, title: str = "") -> Path:
    """Write the HTML report for one configuration's results folder."""
    results_dir = Path(results_dir)
    comp = pd.read_csv(results_dir / "comparison.csv")
    comp["paper_value"] = comp["paper_value"].astype(object).where(comp["paper_value"].notna(), None)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>normbench report: {html.escape(title)}"
        f"</title><style>{CSS}</style></head><body>",
        f"<h1>normbench report: <code>{html.escape(title)}</code></h1>",
    ]
    prov = provenance_summary(results_dir / "runs")
    if prov:
        parts.append(
            "<p>"
            + " · ".join(f"<b>{html.escape(k)}</b>: {html.escape(str(v))}" for k, v in prov.items())
            + "</p>"
        )
    if (comp["verdict"] == "PROXY").any():
        parts.append(
            "<div class='banner'><b>PROXY results.</b> Rows marked PROXY were run under a protocol that "
            "differs from the paper's (data set, epochs or number of runs; see the last column). They "
            "show the pipeline and the trends at small scale and are <b>not</b> reproductions.</div>"
        )
    counts = verdict_counts(comp)
    parts += [
        "<h2>Summary: verdicts per paper</h2>",
        _table_html(list(counts.columns), counts.values.tolist()),
        "<p>Tolerance rule: the paper's value must lie within max(floor, 2·s/√n) of ours, where s is the "
        "std over our n runs (see <code>normbench.compare</code>). Like is compared with like: mean with "
        "mean, best of n with best of n.</p>",
    ]
    headers, rows = display_rows(comp)
    for paper in dict.fromkeys(comp["paper"]):
        idx = [i for i, r in enumerate(rows) if r[0] == paper]
        ran = [rows[i] for i in idx if rows[i][10] != "NOT RUN"]
        not_run = [rows[i] for i in idx if rows[i][10] == "NOT RUN"]
        parts.append(f"<h2>{html.escape(paper)}</h2>")
        if ran:
            parts.append(_table_html(headers[1:], [r[1:] for r in ran], verdict_col=9))
        if not_run:
            parts.append(
                f"<details><summary>{len(not_run)} reference numbers not run by this configuration"
                "</summary>"
                + _table_html(headers[1:], [r[1:] for r in not_run], verdict_col=9)
                + "</details>"
            )
    parts.append("<h2>Experiments</h2>")
    for csv in sorted((results_dir / "tables").glob("*.csv")):
        exp = csv.stem
        shown = display_frame(pd.read_csv(csv))
        parts += [
            f"<h3>{html.escape(exp)}</h3>",
            "<p>Mean ± std over seeds.</p>",
            _table_html(list(shown.columns), shown.values.tolist()),
        ]
        figures = results_dir / "figures" / exp
        for png in [figures / "curves.png", *sorted(p for p in figures.glob("*.png") if p.stem != "curves")]:
            if png.exists():
                parts.append(_img(png))
    parts.append("</body></html>")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
