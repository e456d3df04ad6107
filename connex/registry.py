"""The names the pipeline knows, one registry per kind: the workflow, the schema and the package
all read them from here.

A registry is a tuple of names, in the order the config schema lists them (and the outputs
follow), or a dict from each name to what it carries. The schema cannot import Python, so
``tests/test_registry.py`` checks that its enums are these names; the package checks a value
against a registry with :func:`connex.errors.check_choice`.

This module imports nothing heavy: the workflow reads it while it is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------------------- inputs, anatomy

#: The connectome modalities: structural (from DWI) and functional (from BOLD), in this order.
MODALITIES = ("sc", "fc")

#: Tissue classes of the probability maps (``label-<name>_probseg``), in this order everywhere.
TISSUES = ("GM", "WM", "CSF")

# --------------------------------------------------------------------- structural connectomes

#: DWI denoising (``sc.denoise``): MP-PCA (Veraart 2016) or none.
DENOISE_METHODS = ("mppca", "none")

#: Fibre orientation models (``sc.model``): constrained spherical deconvolution, constant solid angle.
FODF_MODELS = ("csd", "csa")

#: Tracking algorithms (``sc.algorithm``).
TRACKING_ALGORITHMS = ("deterministic", "probabilistic")

#: Stopping criteria (``sc.stopping``): low FA, or the continuous map criterion from tissue maps.
STOPPING_CRITERIA = ("fa", "cmc")

#: The weights of a structural connectome, as written (``stat-<name>``; ConneX 0.1.0 wrote
#: ``meas-<name>``, still read), with what each holds.
SC_WEIGHT_DESCRIPTIONS = {
    "count": "number of streamlines joining the two regions",
    "countvolnorm": "streamline count divided by the sum of the two regions' volumes (per ml)",
    "length": "mean length (mm) of the streamlines joining the two regions",
    "fa": "mean FA along the streamlines joining the two regions",
}
SC_WEIGHTS = tuple(SC_WEIGHT_DESCRIPTIONS)

# --------------------------------------------------------------------- functional connectomes

#: Confound strategies (``fc.strategy``, XCP-D's and Ciric et al.'s names; :mod:`connex.functional.connectivity`).
CONFOUND_STRATEGIES = ("none", "6P", "8P", "24P", "36P", "aCompCor")

#: nilearn's standardisation of the region time series (``fc.standardize``; None: none).
STANDARDIZE = ("zscore_sample", "psc", None)

#: nilearn's temporal filters (``fc.filter``; cosine is high-pass only).
TEMPORAL_FILTERS = ("butterworth", "cosine")

#: Estimators of partial correlation and covariance (``fc.covariance_estimator``).
COVARIANCE_ESTIMATORS = ("ledoitwolf", "empirical")

#: The functional connectivity measures, as written (``stat-<name>``; ConneX 0.1.0 wrote
#: ``meas-<name>``, still read), with what each holds.
FC_MEASURE_DESCRIPTIONS = {
    "correlation": "Pearson correlation of the cleaned region time series",
    "partialcorrelation": "partial correlation (from the inverse of the shrunk covariance)",
    "covariance": "covariance of the cleaned (standardised) region time series, shrinkage estimator",
}
FC_MEASURES = tuple(FC_MEASURE_DESCRIPTIONS)

#: The FC measures whose values are correlations (Fisher z applies to them in the graphs).
CORRELATION_MEASURES = ("correlation", "partialcorrelation")

# -------------------------------------------------------------------------- model and graphs

#: A labelled subject without a modality (``model.missing_modality``): left out, or an error.
MISSING_POLICIES = ("exclude", "error")

#: ``partial_dwi``: a participant one of whose DWI runs fails the input check is left out of SC
#: (exclude), or its SC is built from the runs that pass (use_remaining).
PARTIAL_DWI_POLICIES = ("exclude", "use_remaining")

#: A connectome with NaN cells (``model.missing_edges``): subject left out, NaN edges set to 0, or an error.
MISSING_EDGE_POLICIES = ("exclude", "zero", "error")

#: Tissue maps of the anatomy stage (``anat.tissues``): the subject's segmentation, or the warped template priors.
TISSUE_METHODS = ("segmentation", "template")

#: The tangent baseline's FC (``model.fc_timeseries``): the time-series covariances where every
#: subject has them (``auto``), or always the matrices (``matrices``; :mod:`connex.model.timeseries`).
FC_TIMESERIES_CHOICES = ("auto", "matrices")

#: How a raw matrix becomes edge weights (:func:`connex.model.graphs.edge_weights`).
EDGE_WEIGHTINGS = ("log1p", "fisher_z", "none")

#: Sparsification rules (``model.graph.sparsify``; :class:`connex.model.graphs.GraphTransform`).
SPARSIFY = ("topk", "proportional")

#: GNN layers of a backbone (``model.architecture.backbone``; :data:`connex.model.layers.BACKBONES`).
BACKBONES = ("gcn", "gat", "gin", "sage")

#: Readouts of the heads (``model.architecture.pooling``; :data:`connex.model.fusion.POOLING`).
POOLINGS = ("region", "mean")

#: Early-stopping scores (``model.training.monitor``).
MONITORS = ("auc", "loss")

#: Name of the head on the fused (cross-modal) representation; the others are named by modality.
FUSED = "fused"

#: Cross-validation schemes (``model.cv.scheme``).
CV_SCHEMES = ("kfold", "leave_site_out")

#: ``model.harmonise.site``: ComBat across sites when the training fold has several (auto), always, never.
SITE_HARMONISATION = ("auto", "combat", "none")

#: ``model.harmonise.covariates``: participants.tsv columns whose linear effects can be regressed out.
COVARIATES = ("age", "sex")


@dataclass(frozen=True)
class ModelSpec:
    """One model the evaluation can train.

    Attributes
    ----------
    name : str
        As in ``model.compare`` and in the outputs.
    label : str
        How figures and the report name it.
    kind : {"graph", "linear"}
        A graph neural network (:mod:`connex.model`), or a linear baseline on the vectorised
        edges (:mod:`connex.evaluation.baselines`).
    modalities : tuple of str
        The connectomes it reads (:data:`MODALITIES`).
    architecture : str or None
        Graph models: the key of :data:`connex.model.architectures.MODELS` that builds it.
        ``early_fusion`` reads one graph of its modalities fused (features side by side, the
        union of the edges); ``connex`` one graph per modality.
    heads : tuple of str
        Graph models: the classifier heads of the joint loss (their keys of
        ``model.training.loss_weights``).
    estimator : {"logistic_regression", "linear_svm"} or None
        Linear baselines: the classifier (L2, C picked by inner CV on the training fold).
    features : {"edges", "tangent"} or None
        Linear baselines: the vectorised edge weights of the modalities the cohort has, or the
        tangent-space embedding of the FC matrices (reference fitted on the training fold;
        :mod:`connex.evaluation.tangent`).
    """

    name: str
    label: str
    kind: str
    modalities: tuple[str, ...]
    architecture: str | None = None
    heads: tuple[str, ...] = ()
    estimator: str | None = None
    features: str | None = None


#: Every model the evaluation can train, by name, ConneX first (the order of the results).
MODEL_SPECS = {spec.name: spec for spec in (
    ModelSpec("connex", "ConneX (SC+FC)", "graph", ("sc", "fc"), "connex", ("sc", "fc", FUSED)),
    ModelSpec("connex_sc", "ConneX SC only", "graph", ("sc",), "connex", ("sc", FUSED)),
    ModelSpec("connex_fc", "ConneX FC only", "graph", ("fc",), "connex", ("fc", FUSED)),
    ModelSpec("early_fusion", "Early-fusion GNN", "graph", ("sc", "fc"), "early_fusion", (FUSED,)),
    ModelSpec("logistic_regression", "Logistic regression", "linear", ("sc", "fc"),
              estimator="logistic_regression", features="edges"),
    ModelSpec("linear_svm", "Linear SVM", "linear", ("sc", "fc"), estimator="linear_svm", features="edges"),
    # Dadi et al. 2019 (NeuroImage 192:115): tangent space + L2 logistic regression, best of 240 FC pipelines
    ModelSpec("tangent_logistic_regression", "Tangent-space logistic regression", "linear", ("fc",),
              estimator="logistic_regression", features="tangent"),
)}
MODELS = tuple(MODEL_SPECS)
GRAPH_MODELS = tuple(name for name, spec in MODEL_SPECS.items() if spec.kind == "graph")
LINEAR_MODELS = tuple(name for name, spec in MODEL_SPECS.items() if spec.kind == "linear")


def usable_models(requested: list[str] | tuple[str, ...], modalities: list[str] | tuple[str, ...]
                  ) -> tuple[list[str], list[str]]:
    """Which of the ``requested`` models a cohort with these ``modalities`` can train.

    A graph model needs every modality it reads (``connex`` needs SC and FC; ``connex_fc`` only
    FC); a linear baseline reads the edges of whichever of its modalities the cohort has (FC
    edges alone on an FC-only cohort, SC and FC edges side by side otherwise).

    Returns
    -------
    kept, left_out : list of str
        In the order requested.
    """
    present = set(modalities)
    kept, left_out = [], []
    for name in requested:
        spec = MODEL_SPECS[name]
        needed = set(spec.modalities)
        ok = needed <= present if spec.kind == "graph" else bool(needed & present)
        (kept if ok else left_out).append(name)
    return kept, left_out
