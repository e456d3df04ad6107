"""Cross-validation splits, made once and shared by every model.

Shape letters: ``s`` subjects."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from connex.errors import ConnectomeError, check_choice
from connex.model.dataset import ConnectomeDataset
from connex.registry import CV_SCHEMES

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- feasibility

def min_subjects_per_class(scheme: str, n_folds: int) -> int:
    """The fewest subjects of each class ``scheme`` can split: ``n_folds`` for stratified k-fold
    (one in each test fold), one for leave-site-out (whose training folds :func:`make_splits`
    checks split by split)."""
    check_choice("scheme", scheme, CV_SCHEMES)
    return n_folds if scheme == "kfold" else 1


def can_cross_validate(label_counts: Mapping[str, int], *, scheme: str, n_folds: int) -> bool:
    """Whether subjects with these labels can fill the cross-validation: two classes at least, each
    with :func:`min_subjects_per_class` subjects.

    ``label_counts``: class -> number of labelled subjects, classes without any left out (such as
    ``table["label"].value_counts()``). The workflow asks this before it plans the model stages, to
    leave them out for an unlabelled or one-class dataset; :func:`make_splits` still checks each
    training fold.
    """
    counts = dict(label_counts)
    return len(counts) >= 2 and min(counts.values()) >= min_subjects_per_class(scheme, n_folds)


def training_subjects_per_class(*, search: Mapping | None, inner_folds: int) -> int:
    """The fewest subjects of each class a training fold needs (``min_train_per_class`` of
    :func:`make_splits`): two, one to fit and one for the validation split; ``inner_folds`` with a
    nested search, which splits each training fold again."""
    return max(2, inner_folds) if search else 2


def trainings_per_split(*, search: Mapping[str, list] | None, inner_folds: int, permutations: int) -> int:
    """How many times each model is trained in one split's job: once, plus once per label
    permutation, plus once per candidate of a nested search and inner fold (a job does one or
    the other, never both: :func:`connex.evaluation.folds.run_fold`)."""
    searches = math.prod(len(values) for values in search.values()) * inner_folds if search else 0
    return (1 + permutations) * (1 + searches)


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
    check_choice("scheme", scheme, CV_SCHEMES)
    y = dataset.y
    ids = np.array(dataset.subjects)
    rows = []
    if scheme == "kfold":
        counts = pd.Series(dataset.participants["label"]).value_counts()
        if counts.min() < min_subjects_per_class(scheme, n_folds):
            raise ConnectomeError(
                f"Stratified {n_folds}-fold cross-validation needs at least {n_folds} subjects of each class; "
                f"the dataset has {counts.to_dict()} (participants: {', '.join(ids)}). "
                "Lower model.folds or add subjects.")
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
