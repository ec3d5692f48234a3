"""Paper-layout tables and the cross-paper baseline table, from hand-made comparison rows."""

import csv
import json
import math
import subprocess

import pandas as pd
import pytest
from conftest import copy_workflow

from normbench.cli.main import build_parser, main
from normbench.outputs.paper_tables import (
    _clean,
    baseline_grid,
    baseline_groups,
    cell_text,
    layout,
    planned_files,
    planned_tables,
    read_comparison,
    to_latex,
    write_all,
)
from normbench.outputs.report import build_report
from normbench.references import Reference, load_references

NAN = float("nan")


def row(paper, table, r, c, verdict="NOT RUN", value=5.2, ours=NAN, std=NAN, n=0, **kw):
    """One comparison row, with the columns normbench compare writes."""
    return {
        "id": f"{paper}/{table}/{r}/{c}",
        "paper": paper,
        "table": kw.pop("label", table.capitalize()),
        "row": r,
        "column": c,
        "model": kw.pop("model", "preact_resnet164"),
        "method": kw.pop("method", "none"),
        "metric": kw.pop("metric", "final_test_error"),
        "units": "%",
        "statistic": kw.pop("statistic", "mean"),
        "paper_value": value,
        "paper_runs": None,
        "ours": ours,
        "ours_mean": ours,
        "ours_std": std,
        "n": n,
        "diverged": 0,
        "delta": NAN,
        "tolerance": NAN,
        "rule": "",
        "verdict": verdict,
        "protocol_differences": kw.pop("diffs", ""),
        **kw,
    }


def ref(
    paper, table, r, c, dataset="cifar10", model="preact_resnet164", metric="final_test_error", value=5.2
):
    return Reference(
        paper=paper,
        table=table,
        label=table.capitalize(),
        row=r,
        column=c,
        metric=metric,
        units="%",
        statistic="mean",
        value=value,
        dataset=dataset,
        runs=None,
        epochs=None,
        protocol="",
        model=model,
    )


def write_json(path, rows):
    path.write_text(json.dumps(rows, allow_nan=True))
    return path


ROWS = [
    row("p1", "table1", "depth 20", "ResNet", "REPRODUCED", 5.2, 5.31, 0.12, 2),
    row(
        "p1",
        "table1",
        "depth 20",
        "Plain",
        "PROXY",
        6.0,
        7.5,
        0.5,
        2,
        diffs="data set digits (paper: cifar10)",
    ),
    row("p1", "table1", "depth 164", "ResNet", "NOT RUN", 4.6),
    row("p1", "table1", "depth 83", "Plain", "DEVIATES", 7.0, 9.0, 0.1, 3),
    row("p1", "table2", "a", "x", "INCONCLUSIVE", 1.0, 1.5, NAN, 1),
]


def test_layout_keeps_the_papers_rows_and_columns_in_first_seen_order():
    (t1, t2) = layout([_clean(r) for r in ROWS])
    assert (t1.paper, t1.table, t1.label) == ("p1", "table1", "Table1")
    assert t1.rows == ["depth 20", "depth 164", "depth 83"] and t1.columns == ["ResNet", "Plain"]
    headers, body = t1.grid()
    assert headers == ["", "ResNet", "Plain"]
    assert body[0] == ["depth 20", "5.31 ± 0.12 (paper 5.20) ✓", "7.50 ± 0.50 (paper 6.00) PROXY"]
    assert body[1] == ["depth 164", "NOT RUN (paper 4.60)", ""]  # the paper has no Plain-164 number here
    assert body[2] == ["depth 83", "", "9.00 ± 0.10 (paper 7.00) ✗"]
    assert t1.verdicts()[1] == ["", "NOT RUN", ""] and t1.ran() == 3
    assert t1.protocol_differences() == ["data set digits (paper: cifar10)"]
    assert t2.grid()[1] == [["a", "1.50 (paper 1.00) ?"]]


def test_cells_for_best_of_n_diverged_and_counts():
    best = _clean(row("p", "t", "r", "c", "PROXY", 6.1, 5.9, 0.2, 2, statistic="best"))
    assert cell_text(best) == "5.90 (best of 2) (paper 6.10) PROXY"
    boo = _clean({**best, "estimator": "Boo_5, expected best of 5 from 2 runs"})
    assert cell_text(boo) == "5.90 (Boo_5) (paper 6.10) PROXY"  # compare's estimator, when it names one
    dash = _clean({**row("p", "t", "r", "c", "REPRODUCED", None), "diverged": 2, "missing": "diverged"})
    assert cell_text(dash) == "2 diverged (paper -, diverges) ✓"
    depth = _clean({**row("p", "t", "r", "c", "REPRODUCED", 164.0, 164.0, NAN, 1), "units": "layers"})
    assert cell_text(depth) == "164 (paper 164) ✓"
    small = _clean(row("p", "t", "r", "c", "PROXY", 0.006, 0.0123, NAN, 1, statistic="none"))
    assert cell_text(small) == "0.012 (paper 0.006) PROXY"


def test_md_csv_tex_written_for_every_table_including_not_run_ones(tmp_path):
    comparison = write_json(tmp_path / "comparison.json", ROWS)
    refs = [ref("p1", "table1", "depth 20", "ResNet"), ref("p2", "fig9", "only", "one", value=3.0)]
    paths = write_all(comparison, tmp_path / "out", refs)
    out = tmp_path / "out"
    expected = {
        out / p / f"{t}.{e}"
        for p, t in [("p1", "table1"), ("p1", "table2"), ("p2", "fig9")]
        for e in ("md", "csv", "tex")
    }
    assert expected | {out / f"baselines.{e}" for e in ("md", "csv", "tex")} == set(paths)
    md = (out / "p1" / "table1.md").read_text()
    assert md.startswith("## p1 Table1") and "| depth 20  | 5.31 ± 0.12 (paper 5.20) ✓" in md
    assert md.index("depth 20") < md.index("depth 164") < md.index("depth 83")
    cells = list(csv.DictReader((out / "p1" / "table1.csv").open()))
    assert [(c["row"], c["column"]) for c in cells] == [
        ("depth 20", "ResNet"),
        ("depth 20", "Plain"),
        ("depth 164", "ResNet"),
        ("depth 83", "Plain"),
    ]
    first = cells[0]
    assert (first["ours"], first["spread"], first["n"], first["paper_value"], first["verdict"]) == (
        "5.31",
        "0.12",
        "2",
        "5.2",
        "REPRODUCED",
    )
    assert cells[2]["ours"] == "" and cells[2]["verdict"] == "NOT RUN"
    tex = (out / "p1" / "table1.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "5.31 $\\pm$ 0.12 (paper 5.20) $\\checkmark$" in tex and tex.count(" \\\\\n") == 4
    # a table the comparison lacks still gets its files: every cell NOT RUN
    assert "NOT RUN (paper 3.00)" in (out / "p2" / "fig9.md").read_text()
    assert [c["verdict"] for c in csv.DictReader((out / "p2" / "fig9.csv").open())] == ["NOT RUN"]


def test_csv_comparison_reads_like_json(tmp_path):
    pd.DataFrame(ROWS).to_csv(tmp_path / "comparison.csv", index=False)
    write_json(tmp_path / "comparison.json", ROWS)
    from_csv = read_comparison(tmp_path / "comparison.csv")
    from_json = read_comparison(tmp_path / "comparison.json")
    assert [cell_text(r) for r in from_csv] == [cell_text(r) for r in from_json]
    assert from_csv[2]["ours"] is None and not math.isnan(from_csv[0]["ours"])


def test_latex_escapes_text():
    tex = to_latex(["", "# params"], [["a_b & 50%", "x"]], ["c"])
    assert "\\# params" in tex and "a\\_b \\& 50\\%" in tex


def test_baselines_group_across_papers_only():
    rows = [
        row("zae", "table2", "ResNet-164", "CIFAR100", "NOT RUN", 24.33),
        row("zae", "table3", "original", "Error", "NOT RUN", 24.33),
        row("jia", "table2", "cited", "CIFAR100", "PROXY", 22.33, 30.0, 1.0, 2),
        row("jia", "table2", "cited", "CIFAR10", "NOT RUN", 5.46),  # data set cifar10: another group
        # Oyedotun's ResNet-164 (another layout, accuracy): the same baseline, restated as an error
        row("oye", "table1", "ResNet-164", "acc", "NOT RUN", 75.5, model="resnet164", metric="test_accuracy"),
        row("oye", "table1", "ResNeXt-164", "acc", "NOT RUN", 75.0, model="preact_resnext164"),  # one paper
        row("xie", "table2", "cited", "CIFAR100", "NOT RUN", 20.0, model=None),  # no model: never grouped
    ]
    refs = [
        ref("zae", "table2", "ResNet-164", "CIFAR100", dataset="cifar100"),
        ref("zae", "table3", "original", "Error", dataset="cifar100"),
        ref("jia", "table2", "cited", "CIFAR100", dataset="cifar100"),
        ref("jia", "table2", "cited", "CIFAR10", dataset="cifar10"),
        ref("oye", "table1", "ResNet-164", "acc", model="resnet164", dataset="cifar100"),
        ref("oye", "table1", "ResNeXt-164", "acc", model="preact_resnext164", dataset="cifar100"),
        ref("xie", "table2", "cited", "CIFAR100", model=None, dataset="cifar100"),
    ]
    groups = baseline_groups([_clean(r) for r in rows], refs)
    assert len(groups) == 1
    (g,) = groups
    assert (g["model"], g["method"], g["dataset"], g["metric"]) == (
        "resnet164",
        "none",
        "cifar100",
        "final_test_error",
    )
    assert [e["paper"] for e in g["entries"]] == ["zae", "zae", "jia", "oye"]
    headers, body = baseline_grid(groups)
    assert headers == ["model", "method", "data set", "metric", "zae", "jia", "oye", "ours", "papers' range"]
    assert body == [
        [
            "resnet164",
            "none",
            "cifar100",
            "final_test_error",
            "24.33 (Table2, CIFAR100; preact_resnet164); 24.33 (Table3, Error; preact_resnet164)",
            "22.33 (Table2, CIFAR100; preact_resnet164)",
            "24.50 (Table1, 100 - acc; resnet164)",
            "30.00 ± 1.00 PROXY (jia Table2)",
            "2.17",
        ]
    ]
    assert baseline_groups([_clean(r) for r in rows], refs, min_papers=4) == []


def test_baselines_files_and_report(tmp_path):
    rows = [
        row("zae", "table2", "ResNet-164", "CIFAR10", "PROXY", 5.46, 6.0, 0.3, 2),
        row("jia", "table2", "cited", "CIFAR10", "NOT RUN", 5.2),
        row("jia", "table2", "other", "CIFAR10", "NOT RUN", 8.0, model="wrn28_10"),
    ]
    refs = [ref("zae", "table2", "ResNet-164", "CIFAR10"), ref("jia", "table2", "cited", "CIFAR10")]
    refs.append(ref("jia", "table2", "other", "CIFAR10", model="wrn28_10"))
    res = tmp_path / "res"
    res.mkdir()
    pd.DataFrame(rows).to_csv(res / "comparison.csv", index=False)
    write_all(write_json(res / "comparison.json", rows), res / "paper_tables", refs)
    md = (res / "paper_tables" / "baselines.md").read_text()
    assert "| resnet164 |" in md and "5.46 (Table2, CIFAR10; preact_resnet164)" in md and "wrn28_10" not in md
    lines = list(csv.DictReader((res / "paper_tables" / "baselines.csv").open()))
    assert [(x["group"], x["paper"], x["paper_value"]) for x in lines] == [
        ("1", "zae", "5.46"),
        ("1", "jia", "5.2"),
    ]
    assert "\\toprule" in (res / "paper_tables" / "baselines.tex").read_text()
    html = build_report(res, res / "report.html", title="t").read_text()
    assert html.index("Same baseline across papers") < html.index("<h2>zae</h2>")
    zae = html[html.index("<h2>zae</h2>") : html.index("<h2>jia</h2>")]
    assert zae.index("Tables in the paper's layout") < zae.index("Every number")
    assert '<td class="PROXY">6.00 ± 0.30 (paper 5.46) PROXY</td>' in zae
    # a results folder without paper tables (an older one) still gets its report, without these sections
    old = tmp_path / "old"
    old.mkdir()
    pd.DataFrame(rows).to_csv(old / "comparison.csv", index=False)
    html = build_report(old, old / "report.html", title="t").read_text()
    assert "Same baseline" not in html and "paper's layout" not in html


def test_no_group_says_so(tmp_path):
    write_all(
        write_json(tmp_path / "c.json", ROWS[:1]), tmp_path / "o", [ref("p1", "table1", "depth 20", "ResNet")]
    )
    assert "No baseline" in (tmp_path / "o" / "baselines.md").read_text()
    assert (tmp_path / "o" / "baselines.csv").read_text().startswith("group,model,method")


def test_cli_writes_the_files_and_explains(tmp_path, capsys):
    help_text = build_parser().format_help()
    assert "paper-tables" in help_text
    with pytest.raises(SystemExit):
        main(["paper-tables", "--help"])
    assert "baselines" in capsys.readouterr().out
    comparison = write_json(tmp_path / "comparison.json", ROWS)
    out = tmp_path / "pt"
    assert main(["paper-tables", "--comparison", str(comparison), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    shipped = planned_tables()
    assert len(printed) == 3 * (len(shipped) + 2) + 3  # every shipped table, p1's two, baselines
    for paper, table in shipped:
        assert (out / paper / f"{table}.md").exists()
    assert (out / "p1" / "table1.tex").exists()


def test_planned_tables_are_every_reference_table():
    refs = load_references()
    assert set(planned_tables(refs)) == {(r.paper, r.table) for r in refs}
    files = planned_files("X", refs)
    assert len(files) == len(set(files)) == 3 * len(planned_tables(refs)) + 3


def test_workflow_plans_a_paper_table_per_reference_table(tmp_path):
    """The DAG's paper_tables outputs, from `snakemake --summary`, are the references' (paper, table)s."""
    copy_workflow(tmp_path)
    result = subprocess.run(
        ["snakemake", "--summary", "--cores", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    files = [
        line.split("\t")[0]
        for line in result.stdout.splitlines()
        if "\tpaper_tables\t" in line and "/paper_tables/" in line
    ]
    planned = {tuple(f.split("/paper_tables/")[1].rsplit(".", 1)[0].split("/")) for f in files}
    refs = load_references()
    assert planned == {(r.paper, r.table) for r in refs} | {("baselines",)}
    assert len(files) == 3 * len(planned)


def test_report_embeds_each_papers_figures_in_the_papers_order(tmp_path):
    """figures/<paper>/<figure>.png go under their paper, Fig. 2 before Fig. 10, appendix figures last; a paper
    without figures gets no empty heading."""
    from normbench.outputs.report import paper_figures_section

    folder = tmp_path / "figures" / "oyedotun2020"
    folder.mkdir(parents=True)
    for stem in ("figA1", "fig10", "fig2", "fig11"):
        (folder / f"{stem}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + stem.encode())
    parts = paper_figures_section(tmp_path, "oyedotun2020")
    assert parts[0] == "<h3>Figures</h3>"
    assert [p.split('alt="')[1].split('"')[0] for p in parts[1:]] == [
        "fig2.png",
        "fig10.png",
        "fig11.png",
        "figA1.png",
    ]
    assert paper_figures_section(tmp_path, "jia2017") == []
