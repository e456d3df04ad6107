from connex.logs import log_to_file

log_to_file(snakemake.log[0])

from connex.atlases import load_atlas  # noqa: E402
from connex.io import write_json, write_tsv  # noqa: E402

spec = snakemake.params.atlas
atlas = load_atlas(spec["name"], custom=spec["custom"], synth_dir=spec["synth_dir"])
write_tsv(atlas.table, snakemake.output.table)
write_json(atlas.description(), snakemake.output.description)
