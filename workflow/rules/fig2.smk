# Zaeemzadeh Fig. 2 studies: experiments with a `grid:` (normbench.studies.fig2). Each (experiment, fig2_probe, method,
# seed) run trains the 3-layer network of every (c, d) cell of the grid; it takes the place of `train` for
# these experiments and writes the same run folder (without checkpoint), so tables, claims and the report read it.


rule fig2_run:
    input:
        data=experiment_data,
    output:
        metrics=f"{RUN_PATTERN}/metrics.jsonl",
        config=f"{RUN_PATTERN}/config.json",
        provenance=f"{RUN_PATTERN}/provenance.json",
    wildcard_constraints:
        experiment=experiment_regex(GRID_EXPERIMENTS),
    log:
        f"{RES}/logs/fig2/{{experiment}}/{{model}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{RES}/benchmarks/fig2/{{experiment}}/{{model}}/{{method}}/seed{{seed}}.tsv"
    params:
        spec=fig2_spec_json,
        out=lambda w, output: os.path.dirname(output.metrics),
    threads: train_threads
    resources:
        gpu=train_gpus,
        mem_mb=train_mem_mb,
        runtime=train_runtime,
    container:
        CONTAINER
    shell:
        "workflow/scripts/gpu-slot.sh {resources.gpu} "
        "normbench fig2 --spec {params.spec:q} --data {input.data:q} --out {params.out:q} 2>&1 | tee {log:q}"


ruleorder: fig2_run > train


rule fig2_figure:
    input:
        lambda w: metrics_files(w.experiment),
    output:
        png=report(f"{RES}/figures/{{experiment}}/fig2_grid.png", category="Figures", subcategory="{experiment}"),
        pdf=f"{RES}/figures/{{experiment}}/fig2_grid.pdf",
        csv=f"{RES}/figures/{{experiment}}/fig2_grid.csv",
    wildcard_constraints:
        experiment=experiment_regex(GRID_EXPERIMENTS),
    log:
        f"{RES}/logs/figures/{{experiment}}/fig2_grid.log",
    params:
        out_dir=lambda w, output: os.path.dirname(os.path.dirname(output.png)),
    resources:
        mem_mb=2000,
        runtime=30,
    container:
        CONTAINER
    shell:
        "normbench figures {input:q} --figure fig2_grid --out-dir {params.out_dir:q} > {log:q} 2>&1"
