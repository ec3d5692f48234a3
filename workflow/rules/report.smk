rule report:
    input:
        f"{RES}/comparison.csv",
        expand(f"{RES}/tables/{{experiment}}.csv", experiment=EXPERIMENTS),
        expand(f"{RES}/figures/{{experiment}}_curves.png", experiment=EXPERIMENTS),
    output:
        report(f"{RES}/report.html", category="Report"),
    log:
        f"{RES}/logs/report.log",
    params:
        results=lambda w, output: os.path.dirname(output[0]),
        title=CONFIG["name"],
    shell:
        "normbench report --results {params.results:q} --title {params.title:q} --out {output:q} > {log:q} 2>&1"
