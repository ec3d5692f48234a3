from normbench.outputs.layouts import OYEDOTUN_UNIT_FIGURES

# Paper-figure targets of figures.smk: the figures the suite draws in the papers' layouts without a config entry,
# and the inputs, arguments and titles of rule paper_figure for those and for the config's `paper_figures`.

# Paper figures the suite draws in the paper's layout without a `paper_figures` entry, from the experiments whose
# `reproduces` lists name one of `keys` (and whose data set is one of `datasets`, and that record `probe`):
# key -> what `normbench figures` draws. A `paper_figures` entry of the same key takes its place.
SUITE_PAPER_FIGURES = {
    # Oyedotun Fig. 11 left MNIST, right CIFAR-10; Fig. 12 left CIFAR-100, right ImageNet; Fig. 13 CIFAR-10 | CIFAR-100
    "oyedotun2020/fig11": dict(draw="--probe weight_condition", keys=["oyedotun2020/fig11", "oyedotun2020/fig12"], datasets=["mnist", "cifar10"], probe="weight_condition", layout={"datasets": ["mnist", "cifar10"]}),
    "oyedotun2020/fig12": dict(draw="--probe weight_condition", keys=["oyedotun2020/fig11", "oyedotun2020/fig12"], datasets=["cifar100", "imagenet"], probe="weight_condition", layout={"datasets": ["cifar100", "imagenet"]}),
    "oyedotun2020/fig13": dict(draw="--probe hidden_condition", keys=["oyedotun2020/fig13"], datasets=["cifar10", "cifar100"], probe="hidden_condition", layout={"datasets": ["cifar10", "cifar100"]}),
    # Jia Fig. 1: lower, middle and higher layers, SGD vs SVB
    "jia2017/fig1": dict(draw="--probe sv_histograms", keys=["jia2017/fig1"], probe="sv_histograms"),
    # Zaeemzadeh Fig. 5: error against parameters, ResNet vs ProcResNet (Table 2's CIFAR-10 runs)
    "zaeemzadeh2020/fig5": dict(draw="--figure param_efficiency", keys=["zaeemzadeh2020/fig5"], datasets=["cifar10"]),
    # Xie Fig. 3 (q^1/q^L over iterations, two panels) and Fig. 4 (q^l/q^L per layer at named iterations)
    "xie2017/fig3": dict(draw="--probe backward_moments", keys=["xie2017/fig3"], probe="backward_moments"),
    "xie2017/fig4": dict(draw="--probe backward_profile", keys=["xie2017/fig4"], probe="backward_moments"),
    # Xie Fig. 6: conv1 filters of ResNet-34 on ImageNet (the Fig. 5 right runs), from their checkpoints
    "xie2017/fig6": dict(draw="--figure conv1_filters", keys=["xie2017/fig6", "xie2017/fig5"], datasets=["imagenet"], checkpoints=True, layout={"depth": 34}),
    # Oyedotun Figs. 5-10 (MNIST, the Fig. 5 protocol) and A1-A6 (CIFAR-10): one model's activations or weights
    **{
        f"oyedotun2020/{fig}": dict(draw="--probe unit_distribution", keys=["oyedotun2020/fig5" if ds == "mnist" else "oyedotun2020/figa1"], datasets=[ds], probe=probe, models=[model], layout={"model": model, "probe": probe})
        for fig, (ds, model, probe) in OYEDOTUN_UNIT_FIGURES.items()
    },
}


def suite_figure_experiments(key: str) -> list[str]:
    fig = SUITE_PAPER_FIGURES[key]
    return [
        name
        for name, exp in CONFIG["experiments"].items()
        if not exp["grid"]
        and set(fig["keys"]) & set(exp["reproduces"])
        and (not fig.get("datasets") or (exp.get("paper_dataset") or exp["dataset"]) in fig["datasets"])
        and (not fig.get("probe") or fig["probe"] in exp["probes"]["names"])
        and (not fig.get("models") or set(fig["models"]) & set(exp["models"]))
    ]


SUITE_FIGURES = {
    key: suite_figure_experiments(key)
    for key in SUITE_PAPER_FIGURES
    if key not in PAPER_FIGURES and suite_figure_experiments(key)
}


def suite_figure_files() -> list[str]:
    return [f"{RES}/figures/{key}.png" for key in SUITE_FIGURES]


def any_paper_figure_inputs(wildcards) -> list[str]:
    """The run logs of a paper figure (config `paper_figures` or the suite's; a suite figure's `models`: only theirs)."""
    key = f"{wildcards.paper}/{wildcards.figure}"
    if key in PAPER_FIGURES:
        return paper_figure_inputs(wildcards)
    models = SUITE_PAPER_FIGURES[key].get("models")
    return [
        f"{run_dir(s)}/metrics.jsonl"
        for exp in SUITE_FIGURES[key]
        for s in run_specs(CONFIG, exp)
        if not models or s.model in models
    ]


def paper_figure_checkpoints(wildcards) -> list[str]:
    """The final weights beside the logs, for a figure that draws them (Xie Fig. 6)."""
    key = f"{wildcards.paper}/{wildcards.figure}"
    if key in PAPER_FIGURES or not SUITE_PAPER_FIGURES[key].get("checkpoints"):
        return []
    return [f"{run_dir(s)}/checkpoint.pt" for exp in SUITE_FIGURES[key] for s in run_specs(CONFIG, exp)]


def any_paper_figure_args(wildcards) -> str:
    key = f"{wildcards.paper}/{wildcards.figure}"
    if key in PAPER_FIGURES:
        return paper_figure_args(wildcards)
    fig = SUITE_PAPER_FIGURES[key]
    layout = f" --layout {shlex.quote(json.dumps(fig['layout'], sort_keys=True))}" if fig.get("layout") else ""
    return fig["draw"] + layout


def any_paper_figure_title(wildcards) -> str:
    """A suite figure is titled by its key (the figure alone, e.g. Oyedotun Fig. 12, whatever its runs list)."""
    key = f"{wildcards.paper}/{wildcards.figure}"
    return f"{wildcards.paper} {wildcards.figure}" if key in PAPER_FIGURES else key


ALL_PAPER_FIGURES = [*PAPER_FIGURES, *SUITE_FIGURES]
