from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.anat.atlases import load_atlas
from connex.inputs.io import write_json, write_tsv

spec = snakemake.params.atlas
atlas = load_atlas(spec["name"], custom=spec["custom"], synth_dir=spec["synth_dir"])
write_tsv(atlas.table, snakemake.output.table)
write_json(atlas.description(), snakemake.output.description)
