"""The report: one self-contained HTML page a person opens first.

It is built from files the DAG wrote (comparison CSV, claims CSV, tables CSV, figure PNGs, run provenance),
never from variables in memory: summary of verdicts per paper (numbers and claims), the comparison and the
claims per paper, then each experiment's table and figures. Figures are embedded (base64) so the page can
be mailed or attached as it is.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import pandas as pd

from normbench.outputs.paper_tables import (
    BASELINES_INTRO,
    LEGEND,
    NO_BASELINES,
    baseline_grid,
    read_baselines,
    read_paper_table,
)
from normbench.outputs.tables import display_frame
from normbench.verdicts import NOT_RUN, PROXY, VERDICTS
from normbench.verdicts.claims import claim_verdict_counts
from normbench.verdicts.claims import display_rows as claim_display_rows
from normbench.verdicts.numbers import display_rows, verdict_counts
from normbench.verdicts.theory import read_verdicts

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


def _table_html(headers: list[str], rows: list[list[str]], verdicts: list[str] | None = None) -> str:
    """An HTML table; with ``verdicts`` (one verdict per row, from the frame, never parsed from a cell) each
    row is coloured by its verdict."""
    out = ["<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in headers) + "</tr>"]
    for i, row in enumerate(rows):
        cls = f' class="{verdicts[i].replace(" ", "")}"' if verdicts is not None else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    return "\n".join(out + ["</table>"])


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<p><img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}"></p>'


def provenance_summary(runs_dir: Path) -> dict:
    """Code versions, devices, engines and training hours of the runs under ``runs_dir``.

    A run trained in a pack (``engine.pack``) records the pack's wall-clock seconds, shared with the other
    members: it counts for ``train_seconds / len(pack)``, so a pack's hours are counted once."""
    provs = [json.loads(p.read_text()) for p in sorted(runs_dir.rglob("provenance.json"))]
    if not provs:
        return {}
    shas = sorted(
        {(p["git"]["sha"] or "unknown")[:10] + (" (dirty)" if p["git"]["dirty"] else "") for p in provs}
    )
    engines = sorted({p["engine"]["engine"] for p in provs if isinstance(p.get("engine"), dict)})
    packed = sum(1 for p in provs if p.get("pack"))
    hours = sum(p.get("train_seconds", 0.0) / len(p.get("pack") or [None]) for p in provs) / 3600
    return {
        "runs": len(provs) if not packed else f"{len(provs)} ({packed} trained in packs)",
        "code": ", ".join(shas),
        "devices": ", ".join(sorted({p["device_name"] for p in provs})),
        "torch": ", ".join(sorted({p["versions"]["torch"] for p in provs})),
        **({"engines": ", ".join(engines)} if engines else {}),
        "train hours": f"{hours:.3f}",
    }


def read_claims(results_dir: Path) -> pd.DataFrame | None:
    """``claims.csv`` of a results folder (None when the folder has none, e.g. an older comparison)."""
    path = results_dir / "claims.csv"
    if not path.exists():
        return None
    df = pd.read_csv(path, dtype={"holds_on_proxy": object}, keep_default_na=False)
    return df


def summary_counts(comp: pd.DataFrame, claims: pd.DataFrame | None) -> tuple[list[str], list[list]]:
    """Verdict counts per paper: one row for its trained numbers, one for its claims, and one for its
    structure checks (parameter counts, depths from the registry), which are never trained results."""
    counts = {"trained numbers": verdict_counts(comp).set_index("paper")}
    if "kind" in comp and (comp["kind"] == "structure").any():
        counts["structure (registry)"] = verdict_counts(comp, "structure").set_index("paper")
    if claims is not None:
        counts["claims"] = claim_verdict_counts(claims).set_index("paper")
    papers = list(dict.fromkeys([*comp["paper"], *([] if claims is None else claims["paper"])]))
    rows = []
    for paper in papers:
        for what, table in counts.items():
            if paper in table.index:
                vals = [int(table.loc[paper, v]) for v in VERDICTS]
                if sum(vals) or what != "structure (registry)":
                    rows.append([paper, what, *vals, sum(vals)])
    return ["paper", "what", *VERDICTS, "total"], rows


def _grid_html(headers: list[str], rows: list[list[str]], classes: list[list[str]]) -> str:
    """A table coloured cell by cell: ``classes`` holds each cell's verdict ('' for none)."""
    out = ["<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in headers) + "</tr>"]
    for row, verdicts in zip(rows, classes):
        cells = []
        for cell, verdict in zip(row, verdicts):
            cls = f' class="{verdict.replace(" ", "")}"' if verdict else ""
            cells.append(f"<td{cls}>{html.escape(str(cell))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out + ["</table>"])


def paper_tables_section(results_dir: Path, comp: pd.DataFrame, paper: str) -> list[str]:
    """One paper's tables in its own layout (``paper_tables/<paper>/<table>.csv``), not-run ones folded away."""
    folder = results_dir / "paper_tables" / paper
    keys = dict.fromkeys(str(i).split("/", 2)[1] for i in comp.loc[comp["paper"] == paper, "id"])
    tables = [read_paper_table(folder / f"{k}.csv") for k in keys if (folder / f"{k}.csv").exists()]
    if not tables:
        return []
    parts = ["<h3>Tables in the paper's layout</h3>", f"<p>{html.escape(LEGEND)}</p>"]
    not_run = []
    for table in tables:
        headers, body = table.grid()
        block = f"<h4>{html.escape(table.label)} ({table.ran()} of {len(table.cells)} numbers compared)</h4>"
        block += _grid_html(headers, body, table.verdicts())
        if table.protocol_differences():
            block += f"<p>Protocol differences: {html.escape('; '.join(table.protocol_differences()))}.</p>"
        if table.ran():
            parts.append(block)
        else:
            not_run.append(block)
    if not_run:
        parts.append(
            f"<details><summary>{len(not_run)} tables not run by this configuration</summary>"
            + "\n".join(not_run)
            + "</details>"
        )
    return parts


def baselines_section(results_dir: Path) -> list[str]:
    """The "Same baseline across papers" section, from ``paper_tables/baselines.csv`` (none without it)."""
    path = results_dir / "paper_tables" / "baselines.csv"
    if not path.exists():
        return []
    groups = read_baselines(path)
    parts = ["<h2>Same baseline across papers</h2>"]
    if not groups:
        return parts + [f"<p>{html.escape(NO_BASELINES)}</p>"]
    headers, rows = baseline_grid(groups)
    return parts + [f"<p>{html.escape(BASELINES_INTRO)}</p>", _table_html(headers, rows)]


def claims_section(claims: pd.DataFrame, paper: str) -> list[str]:
    """The "Claims" part of one paper's section: evaluated claims in a table, NOT RUN ones folded away."""
    sub = claims[claims["paper"] == paper]
    if sub.empty:
        return []
    headers, rows = claim_display_rows(sub)
    keep = [3, 4, 5, 6, 7]  # statement, check, measured, verdict, protocol differences
    shown = [headers[i] for i in keep]
    # a NOT RUN claim some of whose comparisons could be measured is shown with the evaluated ones
    partly = [
        any(c["outcome"] != NOT_RUN for c in json.loads(c_json or "[]")) for c_json in sub["comparisons"]
    ]
    verdicts = list(sub["verdict"])
    shown_ran = [v != NOT_RUN or p for v, p in zip(verdicts, partly)]
    ran = [[r[i] for i in keep] for r, ok in zip(rows, shown_ran) if ok]
    not_run = [[r[i] for i in keep] for r, ok in zip(rows, shown_ran) if not ok]
    ran_v = [v for v, ok in zip(verdicts, shown_ran) if ok]
    not_run_v = [v for v, ok in zip(verdicts, shown_ran) if not ok]
    n_ran = sum(v != NOT_RUN for v in verdicts)
    title = f"Claims ({n_ran} of {len(rows)} evaluated"
    title += f", {sum(partly) - n_ran} not run but partly measured)" if sum(partly) > n_ran else ")"
    parts = [f"<h3>{html.escape(title)}</h3>"]
    if ran:
        parts.append(_table_html(shown, ran, ran_v))
    if not_run:
        parts.append(
            f"<details><summary>{len(not_run)} claims not run by this configuration</summary>"
            + _table_html(shown, not_run, not_run_v)
            + "</details>"
        )
    return parts


RULES_NUMBERS = (
    "<p>Numbers: with Δ = ours − paper, SE the standard error of ours over our n runs and f the "
    "metric's floor and t the 95 % Student-t quantile at n − 1 degrees of freedom, REPRODUCED when "
    "|Δ| ≤ f and t·SE ≤ f, DEVIATES when |Δ| − t·SE > f (the whole interval Δ ± t·SE lies outside ±f); "
    "a finite paper number with diverged runs is never REPRODUCED, incomplete runs are excluded and "
    "counted, std rows are judged as spreads (chi-square interval), parameter counts and depths are "
    "structure checks counted apart. INCONCLUSIVE otherwise (the spread is wider than the band, or "
    "Δ is just past it) or with fewer than 2 runs (see <code>normbench.verdicts.numbers</code>). Like is "
    "compared with like: mean with mean, best of n with best of n (expected best of n by bootstrap, Boo_n, "
    "when our number of runs differs).</p>"
)
RULES_CLAIMS = (
    "<p>Claims: each qualitative claim is a named check on our runs (see <code>normbench.verdicts.claims</code> "
    "and <code>docs/references.md</code>). An order a &lt; b holds when the 95 % Student-t interval "
    "d ± t·SE of the difference of the means lies below 0 (never on the survivors of diverged runs), fails "
    "when it lies above 0, and is INCONCLUSIVE otherwise or with fewer than 2 runs per subject. A PROXY claim "
    "shows in brackets whether it holds on the proxy runs.</p>"
)
PROXY_BANNER = (
    "<div class='banner'><b>PROXY results.</b> Rows marked PROXY were run under a protocol that "
    "differs from the paper's (data set, epochs, number of runs or a recipe key; see the last column). They "
    "show the pipeline and the trends at small scale and are <b>not</b> reproductions.</div>"
)


RULES_THEORY = (
    "<p>Theory: each theorem or lemma with a measurable prediction is checked numerically on matrices and "
    "small networks built for it (<code>normbench theory</code>, <code>docs/theory.md</code>), over the range "
    "the statement speaks of, against its bound or rate. A measured number passes when it lies inside the "
    "bound up to the stated numerical tolerance and fails otherwise; sampled quantities are judged by their "
    "95 % Student-t interval as the claims are; a check passes when all its comparisons pass (REPRODUCED), "
    "fails when any fails (DEVIATES), and is INCONCLUSIVE otherwise.</p>"
)


def _theory_section(results_dir: Path, paper: str) -> list[str]:
    """The "Theory, checked numerically" part of one paper's section: each check's statement (quoted, with its
    place), verdict, what was measured, and its figure."""
    rows = [r for r in read_verdicts(results_dir / "theory" / "verdicts.json") if r["paper"] == paper]
    if not rows:
        return []
    parts = [
        f"<h3>Theory, checked numerically ({len(rows)} statements, scale {html.escape(str(rows[0]['scale']))})</h3>"
    ]
    parts.append(
        _table_html(
            ["statement", "where", "measured", "verdict"],
            [[r["key"].split("/", 1)[1], r["where"], r["summary"], r["verdict"]] for r in rows],
            [r["verdict"] for r in rows],
        )
    )
    for r in rows:
        parts += [
            f"<h4>{html.escape(r['key'])}: {html.escape(r['where'])} — {html.escape(r['verdict'])}</h4>",
            f"<blockquote>{html.escape(r['statement'])}</blockquote>",
            f"<p><b>Built:</b> {html.escape(r['construction'])}. <b>Measured:</b> {html.escape(r['summary'])}.</p>",
        ]
        png = results_dir / "theory" / r["figure"]
        if png.exists():
            parts.append(_img(png))
    return parts


def _head(results_dir: Path, title: str) -> list[str]:
    """The page head, the title and one line of provenance."""
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
    return parts


def _paper_section(
    results_dir: Path, comp: pd.DataFrame, claims: pd.DataFrame | None, paper: str, display: tuple[list, list]
) -> list[str]:
    """One paper: its tables in the paper's layout, every number with its rule (run, then not run), claims."""
    headers, rows = display
    verdicts = list(comp["verdict"])
    idx = [i for i, p in enumerate(comp["paper"]) if p == paper]
    ran = [i for i in idx if verdicts[i] != NOT_RUN]
    not_run = [i for i in idx if verdicts[i] == NOT_RUN]
    parts = [f"<h2>{html.escape(paper)}</h2>"]
    layout = paper_tables_section(results_dir, comp, paper)
    parts += layout
    if layout and idx:
        parts.append("<h3>Every number, with its tolerance rule</h3>")
    if ran:
        parts.append(_table_html(headers[1:], [rows[i][1:] for i in ran], [verdicts[i] for i in ran]))
    if not_run:
        parts.append(
            f"<details><summary>{len(not_run)} reference numbers not run by this configuration</summary>"
            + _table_html(headers[1:], [rows[i][1:] for i in not_run], [NOT_RUN] * len(not_run))
            + "</details>"
        )
    if claims is not None:
        parts += claims_section(claims, paper)
    parts += paper_figures_section(results_dir, paper)
    parts += _theory_section(results_dir, paper)
    return parts


def paper_figures_section(results_dir: Path, paper: str) -> list[str]:
    """The paper's figures (``figures/<paper>/<figure>.png``, drawn from every experiment that reproduces
    them), in the paper's order: Fig. 2 before Fig. 10, appendix figures (A1, ...) last."""
    folder = results_dir / "figures" / paper
    pngs = sorted(
        folder.glob("*.png"), key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem)]
    )
    if not pngs:
        return []
    return ["<h3>Figures</h3>", *(_img(png) for png in pngs)]


def _experiments_section(results_dir: Path) -> list[str]:
    """Each experiment's table (mean ± std over seeds) and its figures, the learning curves first."""
    parts = ["<h2>Experiments</h2>"]
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
    return parts


def build_report(results_dir: str | Path, out: str | Path, title: str = "") -> Path:
    """Write the HTML report for one configuration's results folder: summary of verdicts per paper, the
    rules, the baselines, each paper's numbers and claims, then each experiment's tables and figures."""
    results_dir = Path(results_dir)
    comp = pd.read_csv(results_dir / "comparison.csv")
    comp["paper_value"] = comp["paper_value"].astype(object).where(comp["paper_value"].notna(), None)
    comp["protocol_differences"] = comp["protocol_differences"].fillna("")
    claims = read_claims(results_dir)
    parts = _head(results_dir, title)
    if (comp["verdict"] == PROXY).any() or (claims is not None and (claims["verdict"] == PROXY).any()):
        parts.append(PROXY_BANNER)
    headers, rows = summary_counts(comp, claims)
    parts += ["<h2>Summary: verdicts per paper</h2>", _table_html(headers, rows), RULES_NUMBERS]
    if claims is not None:
        parts.append(RULES_CLAIMS)
    theory = read_verdicts(results_dir / "theory" / "verdicts.json")
    if theory:
        parts.append(RULES_THEORY)
    parts += baselines_section(results_dir)
    display = display_rows(comp)
    papers = [*comp["paper"], *([] if claims is None else claims["paper"]), *(r["paper"] for r in theory)]
    for paper in dict.fromkeys(papers):
        parts += _paper_section(results_dir, comp, claims, paper, display)
    parts += _experiments_section(results_dir)
    parts.append("</body></html>")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
