import nibabel as nib

from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.anat.preprocess import Registration

inp, out = snakemake.input, snakemake.output
registration = Registration.load(affine=inp.affine, warp=inp.warp, inverse_warp=inp.inverse_warp,
                                 t1w=nib.load(inp.mask))
registration.save_composites(composite=out.composite, inverse_composite=out.inverse_composite)
