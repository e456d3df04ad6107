"""Which edge weighting each modality's matrices get in the graphs (:func:`connex.model.graphs.edge_weights`).

Kept apart from :mod:`connex.model.graphs`, which imports torch, because the workflow reads it
while it is parsed.
"""

from __future__ import annotations

from connex.errors import check_choice
from connex.registry import CORRELATION_MEASURES, FC_MEASURES


def modality_weighting(fc_measure: str, *, fc_is_fisher_z: bool = False) -> dict[str, str]:
    """Edge weighting of each modality: SC ``log1p``; FC ``fisher_z`` for the correlation measures
    (:data:`connex.registry.CORRELATION_MEASURES`), ``none`` for covariance.

    Parameters
    ----------
    fc_measure : str
        The FC measure the model reads (:data:`connex.registry.FC_MEASURES`).
    fc_is_fisher_z : bool
        The FC matrices already hold Fisher z values (the FC stage wrote them so, ``fc.fisher_z``):
        they are used as they are.

    Returns
    -------
    dict
        Modality -> weighting, the ``weighting`` of the graph parameters of
        :func:`connex.evaluation.folds.run_fold`.
    """
    check_choice("fc_measure", fc_measure, FC_MEASURES)
    fisher = fc_measure in CORRELATION_MEASURES and not fc_is_fisher_z
    return {"sc": "log1p", "fc": "fisher_z" if fisher else "none"}
