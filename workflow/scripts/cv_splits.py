from connex.logs import log_to_file

log_to_file(snakemake.log[0])

from connex.dataset import ConnectomeDataset  # noqa: E402
from connex.evaluation import make_splits  # noqa: E402
from connex.io import write_tsv  # noqa: E402

cv = snakemake.params.cv
dataset = ConnectomeDataset.load(snakemake.input.dataset)
splits = make_splits(dataset, scheme=cv["scheme"], n_folds=cv["folds"], n_repeats=cv["repeats"], seed=cv["seed"])
write_tsv(splits, snakemake.output.splits)
