from connex.logs import log_to_file

log_to_file(snakemake.log[0])

from connex.evaluation.splits import make_splits
from connex.inputs.io import write_tsv
from connex.model.dataset import ConnectomeDataset

cv = snakemake.params.cv
dataset = ConnectomeDataset.load(snakemake.input.dataset)
# A nested search splits each training fold again: it needs inner_folds subjects of each class.
needed = max(2, cv["inner_folds"]) if cv["search"] else 2
splits = make_splits(dataset, scheme=cv["scheme"], n_folds=cv["folds"], n_repeats=cv["repeats"], seed=cv["seed"],
                     min_train_per_class=needed)
write_tsv(splits, snakemake.output.splits)
