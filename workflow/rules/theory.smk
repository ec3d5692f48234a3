# The papers' theorems checked numerically (normbench.studies.theory; docs/theory.md): one figure and one verdict
# per theorem, from matrices and small networks built on the CPU, no data and no training. The configuration's
# name chooses the sizes (`paper`: the statements' full ranges, e.g. depth 4 to 1000; any other: small, seconds).
from normbench.studies.theory import CHECKS as THEORY_CHECKS


rule theory:
    output:
        verdicts=f"{RES}/theory/verdicts.json",
        figures=[
            report(f"{RES}/theory/{key}.png", category="Theory", subcategory=key.split("/")[0])
            for key in THEORY_CHECKS
        ],
        data=[f"{RES}/theory/{key}.json" for key in THEORY_CHECKS],
    log:
        f"{RES}/logs/theory.log",
    params:
        out_dir=lambda w, output: os.path.dirname(output.verdicts),
        name=CONFIG["name"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    container:
        CONTAINER
    shell:
        "OMP_NUM_THREADS={threads} normbench theory --out-dir {params.out_dir:q} --name {params.name:q} "
        "> {log:q} 2>&1"
