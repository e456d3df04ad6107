import json

from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.anat.atlases import read_atlas_regions
from connex.structural.stage import run_connectome

inp, out, params = snakemake.input, snakemake.output, snakemake.params
# the regions only: the atlas image is already in T1w space (memory: the MNI image is not loaded)
atlas = read_atlas_regions(params.atlas["name"], inp.atlas_table)
with open(inp.tracking) as handle:
    tracking = json.load(handle)
run_connectome(tractogram=inp.tractogram, mask=inp.mask, fa=inp.fa, xfm=inp.xfm, atlas=atlas, atlas_t1w=inp.atlas_t1w,
               out_matrices={w: out[f"meas_{w}"] for w in params.weights}, out_dseg=out.dseg,
               out_dseg_table=out.dseg_table, out_figure=out.figure,
               assignment_radius_mm=params.assignment_radius_mm, self_loops=params.self_loops,
               tracking=tracking, title=snakemake.params.title)
