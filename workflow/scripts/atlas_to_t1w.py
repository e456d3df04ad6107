import nibabel as nib

from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.anat.atlases import load_atlas
from connex.anat.preprocess import Registration, atlas_to_t1w
from connex.inputs.io import save_nifti, write_json, write_tsv
from connex.report.figures import plot_registration

spec = snakemake.params.atlas
atlas = load_atlas(spec["name"], custom=spec["custom"], synth_dir=spec["synth_dir"])
mask = nib.load(snakemake.input.mask)
registration = Registration.load(affine=snakemake.input.affine, warp=snakemake.input.warp,
                                 inverse_warp=snakemake.input.inverse_warp, t1w=mask)
labels, report = atlas_to_t1w(atlas, mask, registration)
save_nifti(labels, snakemake.output.dseg)
write_tsv(atlas.table, snakemake.output.table)  # the atlas's own indices, as in the image
write_json({**report, "Sources": [snakemake.input.preproc, snakemake.input.affine, snakemake.input.inverse_warp]},
           snakemake.output.sidecar)
plot_registration(t1w=snakemake.input.preproc, brain_mask=snakemake.input.mask, atlas_labels=snakemake.output.dseg,
                  out_png=snakemake.output.figure,
                  title=f"{snakemake.params.title}: brain mask (red) and atlas {atlas.name} "
                        f"({report['NumberOfRegionsPresent']}/{atlas.n_regions} regions) in T1w space")
