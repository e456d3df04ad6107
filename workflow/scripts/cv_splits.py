from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.evaluation.splits import make_splits, training_subjects_per_class
from connex.inputs.io import write_tsv
from connex.model.dataset import ConnectomeDataset

cv = snakemake.params.cv
dataset = ConnectomeDataset.load(snakemake.input.dataset)
needed = training_subjects_per_class(search=cv["search"], inner_folds=cv["inner_folds"])
splits = make_splits(dataset, scheme=cv["scheme"], n_folds=cv["folds"], n_repeats=cv["repeats"], seed=cv["seed"],
                     min_train_per_class=needed)
write_tsv(splits, snakemake.output.splits)
