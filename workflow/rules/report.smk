rule report:
    input:
        rules.compare.output.csv,
        rules.paper_tables.output,
        expand(f"{RES}/tables/{{experiment}}.csv", experiment=EXPERIMENTS),
        figure_files(),
        paper_figure_files(),
        rules.theory.output.verdicts,
        suite_figure_files(),
    output:
        report(f"{RES}/report.html", category="Report"),
    log:
        f"{RES}/logs/report.log",
    params:
        results=lambda w, output: os.path.dirname(output[0]),
        title=CONFIG["name"],
    resources:
        mem_mb=2000,
        runtime=30,
    container:
        CONTAINER
    shell:
        "normbench report --results {params.results:q} --title {params.title:q} --out {output:q} > {log:q} 2>&1"
