rule compare:
    input:
        metrics_files(),
    output:
        csv=f"{RES}/comparison.csv",
        md=report(f"{RES}/comparison.md", category="Comparison"),
        json=f"{RES}/comparison.json",
        claims_csv=f"{RES}/claims.csv",
        claims_md=report(f"{RES}/claims.md", category="Comparison"),
        claims_json=f"{RES}/claims.json",
    log:
        f"{RES}/logs/compare.log",
    params:
        out_dir=lambda w, output: os.path.dirname(output.csv),
    resources:
        mem_mb=2000,
        runtime=30,
    container:
        CONTAINER
    shell:
        "normbench compare {input:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
