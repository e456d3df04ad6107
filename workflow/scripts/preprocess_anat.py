from pathlib import Path

from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.anat.preprocess import load_t1w, register_t1w, save_anat, tissue_maps_to_t1w
from connex.anat.segmentation import save_tissue_maps, segment_tissues
from connex.registry import TISSUES

out = snakemake.output
t1w = load_t1w(snakemake.input.t1w)
result = register_t1w(t1w, n_threads=snakemake.threads)
save_anat(result, preproc=Path(out.preproc), brain_mask=Path(out.mask), affine=Path(out.affine),
          warp=Path(out.warp), inverse_warp=Path(out.inverse_warp), metrics=Path(out.metrics),
          source=snakemake.input.t1w)
priors = tissue_maps_to_t1w(result.brain_mask, result.registration)
tissues = segment_tissues(result.preproc, result.brain_mask, priors, method=snakemake.params.tissues,
                          n_threads=snakemake.threads)
save_tissue_maps(tissues, probseg={tissue: Path(out[tissue]) for tissue in TISSUES}, dseg=Path(out.dseg),
                 dseg_table=Path(out.dseg_table), source=snakemake.input.t1w)
