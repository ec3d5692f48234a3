# The comparison in the papers' own table layouts, one set of files per reference table (run or not), and the
# same baseline across papers. The (paper, table) pairs come from the reference YAMLs, so the outputs are
# known before any job runs.
from normbench.outputs.paper_tables import planned_files


rule paper_tables:
    input:
        rules.compare.output.json,
    output:
        tables=planned_files(f"{RES}/paper_tables", baselines=False),
        baselines=report(f"{RES}/paper_tables/baselines.md", category="Comparison"),
        baselines_csv=f"{RES}/paper_tables/baselines.csv",
        baselines_tex=f"{RES}/paper_tables/baselines.tex",
    log:
        f"{RES}/logs/paper_tables.log",
    params:
        out_dir=lambda w, output: os.path.dirname(output.baselines),
    resources:
        mem_mb=2000,
        runtime=30,
    container:
        CONTAINER
    shell:
        "normbench paper-tables --comparison {input:q} --out {params.out_dir:q} > {log:q} 2>&1"
