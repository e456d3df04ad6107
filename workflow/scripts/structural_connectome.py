import json

from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.anat.atlases import load_atlas
from connex.structural.stage import run_connectome

inp, out, params = snakemake.input, snakemake.output, snakemake.params
spec = params.atlas
atlas = load_atlas(spec["name"], custom=spec["custom"], synth_dir=spec["synth_dir"])
with open(inp.tracking) as handle:
    tracking = json.load(handle)
run_connectome(tractogram=inp.tractogram, mask=inp.mask, fa=inp.fa, xfm=inp.xfm, atlas=atlas, atlas_t1w=inp.atlas_t1w,
               out_matrices={w: out[f"meas_{w}"] for w in params.weights}, out_dseg=out.dseg,
               out_dseg_table=out.dseg_table, out_figure=out.figure,
               assignment_radius_mm=params.assignment_radius_mm, self_loops=params.self_loops,
               tracking=tracking, title=snakemake.params.title)
