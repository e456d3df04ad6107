from pathlib import Path

from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.anat.preprocess import load_t1w, register_t1w, save_anat, tissue_maps_to_t1w
from connex.inputs.io import save_nifti
from connex.registry import TISSUES

out = snakemake.output
t1w = load_t1w(snakemake.input.t1w)
result = register_t1w(t1w, n_threads=snakemake.threads)
save_anat(result, preproc=Path(out.preproc), brain_mask=Path(out.mask), affine=Path(out.affine),
          warp=Path(out.warp), inverse_warp=Path(out.inverse_warp), metrics=Path(out.metrics),
          source=snakemake.input.t1w)
maps = tissue_maps_to_t1w(result.brain_mask, result.registration)
for tissue in TISSUES:
    save_nifti(maps[tissue], out[tissue])
