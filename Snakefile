# ConneX: BIDS -> structural and functional connectomes -> multimodal graph classifier.
# Thin entry point: configuration, schema validation, rule files, and the default target.
from pathlib import Path

from snakemake.utils import min_version, validate

from connex.config import check_config, coerce_booleans, load_schema

min_version("9.0")


configfile: "config/config.yaml"


# --config strict_inputs=true (or a boolean inside a YAML mapping) arrives as a string: read the
# schema's booleans first. After validation (defaults filled in): the input folders and the atlas
# names, so that a wrong setting stops here, before any job (connex/config.py).
SCHEMA = Path(workflow.basedir) / "config" / "schema" / "config.schema.yaml"
coerce_booleans(config, load_schema(SCHEMA))
validate(config, str(SCHEMA))
check_config(config)


include: "workflow/rules/common.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/anat.smk"
include: "workflow/rules/dwi.smk"
include: "workflow/rules/func.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/report.smk"


# Quick cohort-level steps run where Snakemake runs, not as cluster jobs (seconds of work that
# would each wait out a queue and the executor's status checks).
localrules:
    bids_inventory,
    atlas_table,
    cv_splits,
    cohort_qc,
    report,


rule all:
    default_target: True
    input:
        all_static_outputs,
        all_subject_outputs,
        all_scrubbed_outputs,
