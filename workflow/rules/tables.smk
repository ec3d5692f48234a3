rule tables:
    input:
        lambda w: metrics_files(w.experiment),
    output:
        md=report(f"{RES}/tables/{{experiment}}.md", category="Tables"),
        csv=f"{RES}/tables/{{experiment}}.csv",
        tex=f"{RES}/tables/{{experiment}}.tex",
    log:
        f"{RES}/logs/tables/{{experiment}}.log",
    params:
        out_dir=lambda w, output: os.path.dirname(output.md),
    resources:
        mem_mb=2000,
        runtime=30,
    container:
        CONTAINER
    shell:
        "normbench tables {input:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
