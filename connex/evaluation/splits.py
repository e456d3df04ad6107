"""Cross-validation splits, made once and shared by every model.

Shape letters: ``s`` subjects."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from connex.model.dataset import ConnectomeDataset, ConnectomeError

log = logging.getLogger(__name__)

SCHEMES = ("kfold", "leave_site_out")


# ------------------------------------------------------------------------------------ splits

def make_splits(dataset: ConnectomeDataset, *, scheme: str = "kfold", n_folds: int = 5, n_repeats: int = 3,
                seed: int = 0, min_train_per_class: int = 2) -> pd.DataFrame:
    """The cross-validation splits, made once and shared by every model.

    ``kfold``: repeated stratified k-fold (``r01f01``...); ``leave_site_out``: one split per
    site, its subjects the test fold (``site-<name>``).

    Returns a long table: ``split``, ``repeat``, ``fold``, ``participant_id``, ``role``
    (``train`` or ``test``).

    ``min_train_per_class``: each training fold must hold at least this many subjects of each
    class (two: one to fit, one for the validation split; ``inner_folds`` for a nested search).

    Raises
    ------
    ConnectomeError
        Fewer subjects of a class than folds; a training fold short of a class; participants
        without a site, or fewer than two sites, for leave-site-out.
    """
    y = dataset.y
    ids = np.array(dataset.subjects)
    rows = []
    if scheme == "kfold":
        counts = pd.Series(dataset.participants["label"]).value_counts()
        if counts.min() < n_folds:
            raise ConnectomeError(
                f"Stratified {n_folds}-fold cross-validation needs at least {n_folds} subjects of each class; "
                f"the dataset has {counts.to_dict()} (participants: {', '.join(ids)}). Lower model.folds or add subjects.")
        for repeat in range(n_repeats):
            splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed + repeat)
            for fold, (_, test) in enumerate(splitter.split(ids, y)):
                role = np.full(len(ids), "train", dtype=object)
                role[test] = "test"
                rows.append(pd.DataFrame({"split": f"r{repeat + 1:02d}f{fold + 1:02d}", "repeat": repeat + 1,
                                          "fold": fold + 1, "participant_id": ids, "role": role}))
    elif scheme == "leave_site_out":
        no_site = dataset.participants.loc[dataset.participants["site"].isna(), "participant_id"].tolist()
        if no_site:
            raise ConnectomeError(f"Leave-site-out needs a site for every participant; participants.tsv gives none "
                                  f"for {no_site}.")
        sites = dataset.participants["site"].astype(str).to_numpy()
        unique = sorted(set(sites))
        if len(unique) < 2:
            raise ConnectomeError(f"Leave-site-out needs at least two sites; the subjects have {unique}.")
        for fold, site in enumerate(unique):
            role = np.where(sites == site, "test", "train").astype(object)
            rows.append(pd.DataFrame({"split": f"site-{site}", "repeat": 1, "fold": fold + 1,
                                      "participant_id": ids, "role": role}))
    else:
        raise ValueError(f"scheme must be one of {SCHEMES}; {scheme!r} was provided.")
    splits = pd.concat(rows, ignore_index=True)
    labels = dict(zip(dataset.subjects, dataset.participants["label"]))
    for split, table in splits.groupby("split"):
        train = table.loc[table["role"] == "train", "participant_id"].map(labels).value_counts()
        short = [c for c in dataset.classes if train.get(c, 0) < min_train_per_class]
        if short:
            raise ConnectomeError(f"Split {split}: its training fold has {train.to_dict()}; at least "
                                  f"{min_train_per_class} of each class are needed (to fit and to validate). "
                                  "Use fewer folds or add subjects.")
        test = table.loc[table["role"] == "test", "participant_id"].map(labels)
        if test.nunique() < 2:
            log.warning("Split %s: the test fold has one class only (%s); its AUC, balanced accuracy and "
                        "sensitivity or specificity are undefined and left out of the means.", split,
                        test.value_counts().to_dict())
    return splits


def split_indices(dataset: ConnectomeDataset, splits: pd.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) subject indices of one split."""
    table = splits[splits["split"] == split]
    if table.empty:
        raise ValueError(f"No split named {split!r}; splits are {sorted(splits['split'].unique())}.")
    position = {pid: i for i, pid in enumerate(dataset.subjects)}
    train = np.sort([position[p] for p in table.loc[table["role"] == "train", "participant_id"]])
    test = np.sort([position[p] for p in table.loc[table["role"] == "test", "participant_id"]])
    return train, test
