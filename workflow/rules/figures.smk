rule figures:
    input:
        lambda w: metrics_files(w.experiment),
    output:
        png=report(f"{RES}/figures/{{experiment}}_curves.png", category="Figures"),
        pdf=f"{RES}/figures/{{experiment}}_curves.pdf",
    log:
        f"{RES}/logs/figures/{{experiment}}.log",
    params:
        out_dir=lambda w, output: os.path.dirname(output.png),
    shell:
        "normbench figures {input:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
