# Training jobs. An experiment whose pack size is 1 (its `pack`, else engine.pack; the default) has one job per
# run (experiment, model, method, seed): rule `train`. A pack size K > 1 gives one job per K seeds of an
# (experiment, model, method), trained in one process with their steps interleaved (normbench.training.pack): a rule
# `train_seeds<s1>_<s2>...` per group of seeds, limited to the experiments whose seed list is cut into that
# group. Both write the same run folders.
#
# A job's log keeps every attempt (--retries): Snakemake deletes the log before each attempt, so attempt N also
# writes its output to `<log>.attempt-N`, which Snakemake does not know of, and starts the log with the kept
# output of attempts 1..N-1; each attempt's output follows a header line `=== attempt N (<UTC time>) ===`.
# A job that succeeds removes its `.attempt-*` files (its log holds them all). `attempt` is a resource only
# so that the shell command can name it (no --resources limit names it).

ATTEMPT_START = (  # before a training command: the log so far, then this attempt's header
    "a={resources.attempt}; "
    "for i in $(seq 1 $((a - 1))); do cat {log:q}.attempt-$i >> {log:q} 2>/dev/null || true; done; "
    'echo "=== attempt $a ($(date -u +%Y-%m-%dT%H:%M:%SZ)) ===" | tee {log:q}.attempt-$a >> {log:q}; '
)
ATTEMPT_END = " 2>&1 | tee -a {log:q} {log:q}.attempt-$a; rm -f {log:q}.attempt-*"  # after it
RUN_FILES = ("metrics.jsonl", "config.json", "provenance.json", "checkpoint.pt")
RUN_PATTERN = f"{RES}/runs/{{experiment}}/{{model}}/{{method}}/seed{{seed}}"


rule train:
    input:
        data=experiment_data,
    output:
        metrics=f"{RUN_PATTERN}/metrics.jsonl",
        config=f"{RUN_PATTERN}/config.json",
        provenance=f"{RUN_PATTERN}/provenance.json",
        checkpoint=f"{RUN_PATTERN}/checkpoint.pt",
    wildcard_constraints:
        experiment=experiment_regex(name for name in EXPERIMENTS if pack_size(name) == 1),
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
        attempt=lambda w, attempt: attempt,
    container:
        CONTAINER
    shell:
        (
            ATTEMPT_START
            + "workflow/scripts/gpu-slot.sh {resources.gpu} "
            + "normbench train --spec {params.spec:q} --data {input.data:q} --out {params.out:q}"
            + ATTEMPT_END
        )


for _seeds, _experiments in seed_packs().items():
    _tag = "_".join(map(str, _seeds))

    rule:
        name:
            f"train_seeds{_tag}"
        input:
            data=experiment_data,
        output:
            [f"{RUN_PATTERN}/{f}".replace("{seed}", str(s)) for s in _seeds for f in RUN_FILES],
        wildcard_constraints:
            experiment=experiment_regex(_experiments),
        log:
            f"{RES}/logs/train/{{experiment}}/{{model}}/{{method}}/seeds{_tag}.log",
        benchmark:
            f"{RES}/benchmarks/train/{{experiment}}/{{model}}/{{method}}/seeds{_tag}.tsv"
        params:
            runs=lambda w, seeds=_seeds: pack_arguments(w, seeds),
        threads: train_threads
        resources:
            gpu=train_gpus,
            mem_mb=train_mem_mb,
            runtime=lambda w, attempt, n=len(_seeds): n * train_runtime(w, attempt),
            attempt=lambda w, attempt: attempt,
        container:
            CONTAINER
        shell:
            (
                ATTEMPT_START
                + "workflow/scripts/gpu-slot.sh {resources.gpu} "
                + "normbench train {params.runs} --data {input.data:q}"
                + ATTEMPT_END
            )
