rule train:
    input:
        data=experiment_data,
    output:
        metrics=f"{RES}/runs/{{experiment}}/{{model}}/{{method}}/seed{{seed}}/metrics.jsonl",
        config=f"{RES}/runs/{{experiment}}/{{model}}/{{method}}/seed{{seed}}/config.json",
        provenance=f"{RES}/runs/{{experiment}}/{{model}}/{{method}}/seed{{seed}}/provenance.json",
        checkpoint=f"{RES}/runs/{{experiment}}/{{model}}/{{method}}/seed{{seed}}/checkpoint.pt",
    log:
        f"{RES}/logs/train/{{experiment}}/{{model}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{RES}/benchmarks/train/{{experiment}}/{{model}}/{{method}}/seed{{seed}}.tsv"
    params:
        spec=run_spec_json,
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
        "normbench train --spec {params.spec:q} --data {input.data:q} --out {params.out:q} 2>&1 | tee {log:q}"
