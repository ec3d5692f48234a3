rule data:
    output:
        DATA_PATTERN,
    log:
        f"{RES}/logs/data/{{data_id}}.log",
    params:
        dataset=lambda w: DATA[w.data_id][0],
        size=lambda w: "" if DATA[w.data_id][1] is None else f"--image-size {DATA[w.data_id][1]}",
        root=CONFIG["data"]["root"],
        download="--download" if CONFIG["data"]["download"] else "",
    resources:
        mem_mb=2000,
        runtime=30,
    container:
        CONTAINER
    shell:
        "normbench data --dataset {params.dataset} --root {params.root:q} {params.download} {params.size} "
        "--out {output:q} > {log:q} 2>&1"
