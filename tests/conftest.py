"""Shared fixtures: a seeded rng, a tiny synthetic cohort, and writable copies of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from connex.synth import SynthConfig, generate_cohort

REPO = Path(__file__).resolve().parents[1]
REAL_BIDS = REPO.parent / "shared" / "data" / "bids-xa30"

#: A cohort small enough to make in a few seconds, with unequal image dimensions.
TINY = SynthConfig(n_subjects=3, seed=7, n_regions=8, n_volumes=40, t1w_voxel_mm=4.0,
                   dwi_voxel_mm=4.0, bold_voxel_mm=6.0, n_directions=12, n_b0=2,
                   edge_density=0.3, n_sc_effect_edges=2, n_fc_effect_edges=2)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """A read-only-by-convention tiny synthetic BIDS cohort (do not modify: copy it)."""
    return generate_cohort(tmp_path_factory.mktemp("cohort") / "bids", TINY)


@pytest.fixture(scope="session")
def tiny_cohort_6(tmp_path_factory) -> Path:
    """The tiny cohort with 6 participants (3 HC, 3 SZ): the fewest a 3-fold model stage runs on."""
    from dataclasses import replace

    return generate_cohort(tmp_path_factory.mktemp("cohort6") / "bids", replace(TINY, n_subjects=6))


@pytest.fixture(scope="session")
def tiny_sessions_cohort(tmp_path_factory) -> Path:
    """The tiny cohort's first two participants scanned in two sessions each (ses-1, ses-2)."""
    from dataclasses import replace

    return generate_cohort(tmp_path_factory.mktemp("sessions") / "bids", replace(TINY, n_subjects=2, n_sessions=2))


@pytest.fixture
def tiny_bids(tiny_cohort, tmp_path) -> Path:
    """A writable copy of the tiny cohort, for tests that break it."""
    return Path(shutil.copytree(tiny_cohort, tmp_path / "bids"))
