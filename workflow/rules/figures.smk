# The suite's paper figures and the helpers of rule paper_figure (functions only, as common.smk)
include: "figure_targets.smk"


# Figures of every experiment, from its run logs: training curves in the paper's layout (the experiment's
# `figure:` block), one figure per probe it records; the Fig. 2 study's heat maps are in fig2.smk.
rule figures:
    input:
        lambda w: metrics_files(w.experiment),
    output:
        png=report(f"{RES}/figures/{{experiment}}/curves.png", category="Figures", subcategory="{experiment}"),
        pdf=f"{RES}/figures/{{experiment}}/curves.pdf",
    log:
        f"{RES}/logs/figures/{{experiment}}/curves.log",
    params:
        out_dir=lambda w, output: os.path.dirname(os.path.dirname(output.png)),
        layout=lambda w: json.dumps(CONFIG["experiments"][w.experiment]["figure"], sort_keys=True),
    resources:
        mem_mb=2000,
        runtime=30,
    container:
        CONTAINER
    shell:
        "normbench figures {input:q} --layout {params.layout:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule probe_figure:
    input:
        lambda w: metrics_files(w.experiment),
    output:
        png=report(f"{RES}/figures/{{experiment}}/{{probe}}.png", category="Figures", subcategory="{experiment}"),
        pdf=f"{RES}/figures/{{experiment}}/{{probe}}.pdf",
    log:
        f"{RES}/logs/figures/{{experiment}}/{{probe}}.log",
    params:
        out_dir=lambda w, output: os.path.dirname(os.path.dirname(output.png)),
    resources:
        mem_mb=2000,
        runtime=30,
    container:
        CONTAINER
    shell:
        "normbench figures {input:q} --probe {wildcards.probe} --out-dir {params.out_dir:q} > {log:q} 2>&1"


# A paper figure drawn from the runs of every experiment that reproduces it (config `paper_figures`, or the suite's
# table above), e.g. Zaeemzadeh Fig. 4: Plain and ResNet (one experiment) beside ProcResNet (another), one panel per
# depth; Oyedotun Fig. 11: MNIST and CIFAR-10 (two experiments) side by side.
rule paper_figure:
    input:
        runs=any_paper_figure_inputs,
        checkpoints=paper_figure_checkpoints,
    output:
        png=report(f"{RES}/figures/{{paper}}/{{figure}}.png", category="Paper figures", subcategory="{paper}"),
        pdf=f"{RES}/figures/{{paper}}/{{figure}}.pdf",
    wildcard_constraints:
        paper="|".join(sorted({os.path.dirname(k) for k in ALL_PAPER_FIGURES})) or "(?!)",
        figure="|".join(sorted({os.path.basename(k) for k in ALL_PAPER_FIGURES})) or "(?!)",
    log:
        f"{RES}/logs/figures/{{paper}}/{{figure}}.log",
    params:
        stem=lambda w, output: os.path.splitext(output.png)[0],
        what=any_paper_figure_args,
        title=any_paper_figure_title,
    resources:
        mem_mb=2000,
        runtime=30,
    container:
        CONTAINER
    shell:
        "normbench figures {input.runs:q} {params.what} --title {params.title:q} --out-stem {params.stem:q} "
        "> {log:q} 2>&1"
