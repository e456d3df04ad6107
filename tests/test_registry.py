"""One name, one place: the config schema's choices are the registry's names, the package's lookups
have the registry's keys, and every Python default that mirrors a config key equals the schema's
default (the only place defaults live; config/config.yaml sets just what the demo changes)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import numpy as np
import pytest
import yaml

from connex import registry
from connex.errors import ConfigError, check_choice

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "schema" / "config.schema.yaml"
CONFIG = SCHEMA.parents[1] / "config.yaml"

#: Config key -> the registry its enum must equal (same names, same order).
ENUMS = {
    "partial_dwi": registry.PARTIAL_DWI_POLICIES,
    "sc.denoise": registry.DENOISE_METHODS,
    "sc.model": registry.FODF_MODELS,
    "sc.algorithm": registry.TRACKING_ALGORITHMS,
    "sc.stopping": registry.STOPPING_CRITERIA,
    "fc.strategy": registry.CONFOUND_STRATEGIES,
    "fc.standardize": registry.STANDARDIZE,
    "fc.filter": registry.TEMPORAL_FILTERS,
    "fc.measures[]": registry.FC_MEASURES,
    "fc.covariance_estimator": registry.COVARIANCE_ESTIMATORS,
    "model.fc_measure": registry.FC_MEASURES,
    "model.modalities[]": registry.MODALITIES,
    "model.missing_edges": registry.MISSING_EDGE_POLICIES,
    "model.fc_timeseries": registry.FC_TIMESERIES_CHOICES,
    "anat.tissues": registry.TISSUE_METHODS,
    "model.missing_modality": registry.MISSING_POLICIES,
    "model.harmonise.site": registry.SITE_HARMONISATION,
    "model.harmonise.covariates[]": registry.COVARIATES,
    "model.compare[]": registry.MODELS,
    "model.graph.sparsify": registry.SPARSIFY,
    "model.architecture.backbone": registry.BACKBONES,
    "model.architecture.pooling": registry.POOLINGS,
    "model.training.monitor": registry.MONITORS,
    "model.cv.scheme": registry.CV_SCHEMES,
}


@pytest.fixture(scope="module")
def schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def schema_enums(spec: dict, path: str = "") -> dict[str, list]:
    """Every enum of the schema by dotted key (``[]``: the items of an array)."""
    found = {path: spec["enum"]} if "enum" in spec else {}
    if "items" in spec:
        found.update(schema_enums(spec["items"], path + "[]"))
    for key, sub in spec.get("properties", {}).items():
        found.update(schema_enums(sub, f"{path}.{key}" if path else key))
    return found


def default(schema: dict, key: str):
    """The schema default of a dotted config key."""
    spec = schema
    for part in key.split("."):
        spec = spec["properties"][part]
    return spec["default"]


def test_every_schema_enum_is_a_registry(schema):
    enums = schema_enums(schema)
    assert set(enums) == set(ENUMS), "a choice in the schema without a registry (or the reverse)"
    for key, names in ENUMS.items():
        assert enums[key] == list(names), key


def test_list_defaults_are_the_whole_registry(schema):
    assert default(schema, "model.compare") == list(registry.MODELS)
    assert default(schema, "fc.measures") == list(registry.FC_MEASURES)
    assert default(schema, "model.harmonise.covariates") == []  # opt-in: README, "Sites and covariates"


def test_loss_weights_name_every_head(schema):
    heads = {head for spec in registry.MODEL_SPECS.values() for head in spec.heads}
    assert heads == {*registry.MODALITIES, registry.FUSED}
    assert set(default(schema, "model.training.loss_weights")) == heads


def test_model_specs_are_consistent():
    from connex.model.architectures import MODELS as ARCHITECTURES

    graph = [s for s in registry.MODEL_SPECS.values() if s.kind == "graph"]
    linear = [s for s in registry.MODEL_SPECS.values() if s.kind == "linear"]
    assert registry.MODELS == tuple(s.name for s in graph + linear)  # graph models first, ConneX first
    assert registry.MODELS[0] == "connex"
    assert set(ARCHITECTURES) == {s.architecture for s in graph}
    for spec in graph:
        assert registry.FUSED in spec.heads and set(spec.modalities) <= set(registry.MODALITIES), spec
    for spec in linear:
        assert spec.architecture is None and spec.heads == () and set(spec.modalities) <= set(registry.MODALITIES)
        assert spec.estimator in ("logistic_regression", "linear_svm") and spec.features in ("edges", "tangent")
    assert registry.MODEL_SPECS["tangent_logistic_regression"].modalities == ("fc",)


def test_package_lookups_have_the_registry_keys():
    from connex.model.fusion import POOLING
    from connex.model.layers import BACKBONES

    assert tuple(BACKBONES) == registry.BACKBONES
    assert tuple(POOLING) == registry.POOLINGS


def test_every_registered_choice_runs():
    from connex.functional.connectivity import confound_arguments
    from connex.model.graphs import edge_weights
    from connex.structural.connectome import connectome

    matrices, _ = connectome([], np.zeros((3, 4, 5), int), np.eye(4), 2, np.zeros((3, 4, 5)))
    assert tuple(matrices) == registry.SC_WEIGHTS
    assert tuple(registry.SC_WEIGHT_DESCRIPTIONS) == registry.SC_WEIGHTS
    assert set(registry.CORRELATION_MEASURES) < set(registry.FC_MEASURES)
    for strategy in registry.CONFOUND_STRATEGIES:
        confound_arguments(strategy)
    for weighting in registry.EDGE_WEIGHTINGS:
        edge_weights(np.full((1, 3, 3), 0.5), weighting)


def test_check_choice_says_what_was_expected_and_what_was_given():
    assert check_choice("kind", "b", ("a", "b")) == "b"
    assert check_choice("standardize", None, registry.STANDARDIZE) is None
    with pytest.raises(ConfigError, match=r"^'kind' must be one of \{'a', 'b'\}; 'x' was provided\.$"):
        check_choice("kind", "x", ("a", "b"))
    with pytest.raises(ValueError, match=r"\{'count', 'countvolnorm', 'length', 'fa'\}; 'dti'"):
        check_choice("sc_weight", "dti", registry.SC_WEIGHT_DESCRIPTIONS)  # a dict's keys


# ------------------------------------------------------------------------------------- defaults

def test_config_yaml_sets_only_what_the_demo_changes(schema):
    def leaves(config: dict, path: str = ""):
        for key, value in config.items():
            if isinstance(value, dict) and value:
                yield from leaves(value, f"{path}{key}.")
            else:
                yield f"{path}{key}", value

    same = {key for key, value in leaves(yaml.safe_load(CONFIG.read_text())) if value == default(schema, key)}
    assert same == {"model.cv.scheme"}  # stated on purpose (its comment in config.yaml says why)


def dataclass_defaults(cls) -> dict:
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls)}


def keyword_defaults(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def assert_defaults(schema: dict, python: dict, keys: dict[str, str]) -> None:
    """``python[name] == schema default of keys[name]`` for every name (a tuple equals a list default)."""
    for name, key in keys.items():
        expected = default(schema, key)
        expected = tuple(expected) if isinstance(python[name], tuple) else expected
        assert python[name] == expected, f"{name} = {python[name]!r}; the schema's {key} defaults to {expected!r}"


def test_train_params_defaults_are_the_schema_defaults(schema):
    from connex.model.training import TrainParams

    fields = dataclass_defaults(TrainParams)
    assert_defaults(schema, fields, {name: f"model.training.{name}" for name in fields})


def test_tracking_params_defaults_are_the_schema_defaults(schema):
    from connex.structural.tracking import TrackingParams

    fields = dataclass_defaults(TrackingParams)
    assert_defaults(schema, fields, {name: f"sc.{name}" for name in fields})


def test_cleaning_params_defaults_are_the_schema_defaults(schema):
    from connex.functional.connectivity import CleaningParams, connectivity

    fields = dataclass_defaults(CleaningParams)
    assert_defaults(schema, fields, {name: f"fc.{name}" for name in fields})
    assert_defaults(schema, keyword_defaults(connectivity), {"fisher_z": "fc.fisher_z",
                                                            "estimator": "fc.covariance_estimator"})


def test_graph_defaults_are_the_schema_defaults(schema):
    from connex.evaluation.folds import build_graphs
    from connex.model.graphs import GraphTransform

    keys = {name: f"model.graph.{name}" for name in ("sparsify", "k", "density", "clip")}
    assert_defaults(schema, keyword_defaults(GraphTransform.__init__), keys)
    assert_defaults(schema, keyword_defaults(build_graphs), keys)


def test_preprocessing_defaults_are_the_schema_defaults(schema):
    from connex.functional.preprocess import preprocess_bold
    from connex.structural.preprocess import preprocess_dwi

    assert_defaults(schema, keyword_defaults(preprocess_dwi), {"motion_correction": "sc.motion_correction",
                                                               "gibbs": "sc.gibbs_unringing",
                                                               "denoise_method": "sc.denoise"})
    assert_defaults(schema, keyword_defaults(preprocess_bold), {"slice_timing": "fc.slice_timing",
                                                                "dummy_scans": "fc.dummy_scans",
                                                                "min_volumes": "fc.min_volumes",
                                                                "n_compcor": "fc.n_compcor"})


@pytest.mark.parametrize("model", ["ConneX", "EarlyFusionGNN"])
def test_architecture_defaults_are_the_schema_defaults(schema, model):
    from connex.model import architectures

    python = keyword_defaults(getattr(architectures, model).__init__)
    properties = schema["properties"]["model"]["properties"]["architecture"]["properties"]
    if model == "ConneX":
        assert set(properties) <= set(python)
    assert_defaults(schema, python, {name: f"model.architecture.{name}" for name in properties if name in python})


def test_dwi_and_connectome_defaults_are_the_schema_defaults(schema):
    from connex.inputs.checks import B0_THRESHOLD, check_dwi
    from connex.structural.connectome import connectome
    from connex.structural.preprocess import load_dwi, preprocess_dwi

    assert B0_THRESHOLD == default(schema, "sc.b0_threshold")
    for function in (check_dwi, load_dwi, preprocess_dwi):
        assert keyword_defaults(function)["b0_threshold"] == B0_THRESHOLD, function.__name__
    assert_defaults(schema, keyword_defaults(preprocess_dwi), {"denoise_method": "sc.denoise",
                                                               "gibbs": "sc.gibbs_unringing"})
    assert_defaults(schema, keyword_defaults(connectome), {"assignment_radius_mm": "sc.assignment_radius_mm",
                                                           "self_loops": "sc.self_loops"})


def test_dataset_and_evaluation_defaults_are_the_schema_defaults(schema):
    from connex.evaluation.folds import run_fold
    from connex.evaluation.splits import make_splits
    from connex.inputs.bids import build_inventory
    from connex.model.dataset import build_dataset

    inputs = {"label_column": "label_column", "classes": "classes", "site_column": "site_column"}
    assert_defaults(schema, keyword_defaults(build_inventory), {**inputs, "task": "bold_task",
                                                                "strict": "strict_inputs"})
    assert_defaults(schema, keyword_defaults(build_dataset), {**inputs, "task": "bold_task",
                                                              "sc_weight": "model.sc_weight",
                                                              "fc_measure": "model.fc_measure",
                                                              "missing_modality": "model.missing_modality"})
    assert_defaults(schema, keyword_defaults(make_splits), {"scheme": "model.cv.scheme", "n_folds": "model.cv.folds",
                                                            "n_repeats": "model.cv.repeats", "seed": "model.cv.seed"})
    assert_defaults(schema, keyword_defaults(run_fold), {"val_fraction": "model.training.validation_fraction",
                                                         "inner_folds": "model.cv.inner_folds",
                                                         "permutations": "model.cv.permutations"})


def test_synthetic_cohort_defaults_are_the_demo_defaults(schema):
    from connex.synth import SynthConfig

    fields = dataclass_defaults(SynthConfig)
    # n_subjects is 8 (the `connex synth` default) where the workflow's demo makes 6.
    assert fields["n_subjects"] == 8 and default(schema, "demo.subjects") == 6
    assert_defaults(schema, fields, {"seed": "demo.seed", "n_sites": "demo.sites", "n_regions": "demo.regions"})


def test_usable_models_follow_the_cohorts_modalities():
    everything = list(registry.MODELS)
    assert registry.usable_models(everything, ["sc", "fc"]) == (everything, [])
    assert registry.usable_models(everything, ["fc"]) == (
        ["connex_fc", "logistic_regression", "linear_svm", "tangent_logistic_regression"],
        ["connex", "connex_sc", "early_fusion"])
    assert registry.usable_models(["linear_svm", "connex_sc", "tangent_logistic_regression"], ("sc",)) == (
        ["linear_svm", "connex_sc"], ["tangent_logistic_regression"])
