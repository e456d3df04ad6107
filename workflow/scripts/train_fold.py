from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from connex.evaluation.folds import run_fold, write_fold_outputs
from connex.model.dataset import ConnectomeDataset
from connex.model.training import TrainParams

inp, out, params = snakemake.input, snakemake.output, snakemake.params
# Use exactly the job's threads: torch's default (all cores) in parallel jobs over-subscribes the
# CPU, and its spinning OpenMP threads then run 20x slower (measured: 3.4 s vs 0.14 s a batch).
torch.set_num_threads(snakemake.threads)
threadpool_limits(snakemake.threads)
training = dict(params.training)
val_fraction = training.pop("validation_fraction")
outputs = run_fold(ConnectomeDataset.load(inp.dataset), pd.read_csv(inp.splits, sep="\t"),
                   snakemake.wildcards.split, models=params.models, graph_params=params.graph,
                   model_params=params.architecture, train_params=TrainParams(**training),
                   val_fraction=val_fraction, search=params.cv["search"], inner_folds=params.cv["inner_folds"],
                   permutations=params.cv["permutations"], harmonise=params.harmonise,
                   checkpoint_dir=params.checkpoint_dir)
write_fold_outputs(outputs, predictions=out.predictions, importance=out.importance, history=out.history,
                   permutations=out.permutations, info=out.info)
