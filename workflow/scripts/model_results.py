from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.evaluation.results import write_results
from connex.model.dataset import ConnectomeDataset

inp, out = snakemake.input, snakemake.output
dataset = ConnectomeDataset.load(inp.dataset)
write_results(prediction_files=list(inp.predictions), importance_files=list(inp.importance),
              permutation_files=list(inp.permutations), regions=dataset.regions, classes=dataset.classes,
              metrics_tsv=out.metrics, metrics_per_split_tsv=out.metrics_per_split,
              predictions_tsv=out.predictions, edge_importance_tsv=out.edge_importance,
              region_importance_tsv=out.region_importance, roc_png=out.roc, confusion_png=out.confusion,
              importance_png=out.importance)
