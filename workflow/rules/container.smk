# The Apptainer image of the jobs, built only when asked for:
#
#     snakemake --cores 1 containers/normbench.sif        # needs apptainer (root or --fakeroot)
#     snakemake --cores all --use-singularity             # then every job runs inside the image
#
# Snakemake's `container:` directive names an image (a path or URI), not a DAG input, so no job depends on
# this rule and the default target never needs apptainer. A cluster can point the config's `container` at a
# prebuilt image (oras://, docker://) instead. Extra `apptainer build` options: $APPTAINER_BUILD_ARGS
# (default --nv, so that %test sees the GPU; use --notest on a build host without one).


rule container:
    input:
        definition="containers/normbench.def",
        requirements="containers/requirements.txt",
        project="pyproject.toml",
    output:
        "containers/normbench.sif",
    log:
        "containers/normbench.sif.log",
    params:
        extra=os.environ.get("APPTAINER_BUILD_ARGS", "--nv"),
    localrule: True
    run:
        shell(
            "sha=$(git rev-parse HEAD 2>/dev/null || echo unknown); "
            "if [ $sha != unknown ] && ! git diff --quiet HEAD 2>/dev/null; then sha=$sha-dirty; fi; "
            "apptainer build --force $([ $(id -u) -eq 0 ] || echo --fakeroot) {params.extra} "
            "--build-arg VERSION=$(python -c 'import normbench; print(normbench.__version__)') "
            "--build-arg GIT_SHA=$sha {output:q} {input.definition:q} > {log:q} 2>&1"
        )
