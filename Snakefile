# normbench: one DAG from data to the report. Usage: snakemake --cores all [--configfile config/paper.yaml]
# Stages (one rule file each): data -> train -> tables, figures, compare -> report.
from snakemake.utils import min_version

min_version("9.0")


# The default (smoke) configuration, unless one is named with --configfile: Snakemake would otherwise merge
# the two, and the smoke experiments would join the named configuration's.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



# x-* blocks only hold YAML anchors (shared recipes of config/paper.yaml)
for _key in [k for k in config if str(k).startswith("x-")]:
    del config[_key]

# The suite's own validation (normbench.config, as `normbench train --config` runs it) before anything else:
# on error a few lines naming the config file(s) and the dotted key path, and no schema dump or traceback.
import sys
from normbench.config import ConfigError, validate_config

CONFIG_FILES = [str(f) for f in (workflow.overwrite_configfiles or workflow.configfiles)] or ["(no file)"]
try:
    CONFIG = validate_config(config)
except ConfigError as _err:
    print(f"{', '.join(CONFIG_FILES)}: {_err}", file=sys.stderr)
    sys.exit(1)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/fig2.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/paper_tables.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/container.smk"


# Every run log is a target too: a deleted log is rebuilt, and everything downstream of it with it.
rule all:
    input:
        f"{RES}/report.html",
        metrics_files(),
    default_target: True


onerror:
    print_failed_logs(log)
