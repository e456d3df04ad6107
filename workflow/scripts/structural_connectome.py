import json

from connex.logs import log_to_file

log_to_file(snakemake.log[0])

from connex.anat.atlases import load_atlas
from connex.structural.stage import run_connectome

inp, out, params = snakemake.input, snakemake.output, snakemake.params
spec = params.atlas
atlas = load_atlas(spec["name"], custom=spec["custom"], synth_dir=spec["synth_dir"])
with open(inp.tracking) as handle:
    tracking = json.load(handle)
run_connectome(inp.tractogram, inp.mask, inp.fa, inp.xfm, atlas, inp.atlas_t1w, {w: out[f"meas_{w}"] for w in params.weights},
               out.dseg, out.figure, assignment_radius_mm=params.assignment_radius_mm, self_loops=params.self_loops,
               tracking=tracking, title=f"sub-{snakemake.wildcards.subject}")
