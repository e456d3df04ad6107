"""The configuration fails early and clearly (connex/config.py): command-line booleans, input
folders, atlas names; and, through dry runs, the messages a user sees before any job."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from connex.anat.atlases import BUILT_IN_ATLASES
from connex.config import (
    SYNTH_TABLE,
    check_atlases,
    check_config,
    check_paths,
    coerce_booleans,
    known_atlases,
    load_schema,
)
from connex.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

SCHEMA = REPO / "config" / "schema" / "config.schema.yaml"

#: A dry run in a scratch folder: config/config.yaml named by path, so nothing is written in the repo.
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--nolock", "--dry-run",
             "--cores", "1", "--configfile", str(REPO / "config" / "config.yaml")]


def dry_run(folder: Path, *settings: str) -> subprocess.CompletedProcess:
    folder.mkdir(exist_ok=True)
    return subprocess.run(SNAKEMAKE + ["--directory", str(folder), "--config", *settings], cwd=folder,
                          capture_output=True, text=True, timeout=600)


def bids_folder(root: Path, synthetic: bool = False) -> Path:
    """The smallest folder check_paths takes for BIDS (with the synth atlas's table if synthetic)."""
    (root / "sub-01").mkdir(parents=True)
    (root / "participants.tsv").write_text("participant_id\tdiagnosis\nsub-01\tHC\n")
    if synthetic:
        (root / SYNTH_TABLE).parent.mkdir(parents=True)
        (root / SYNTH_TABLE).write_text("index\tname\n1\tr1\n")
    return root


@pytest.fixture(scope="module")
def schema() -> dict:
    return load_schema(SCHEMA)


def boolean_keys(spec: dict, key: str = "") -> list[str]:
    """Dotted keys of every boolean of the schema."""
    found = [key] if spec.get("type") == "boolean" else []
    for name, sub in spec.get("properties", {}).items():
        found += boolean_keys(sub, f"{key}.{name}" if key else name)
    return found


def nested(keys: str, value) -> dict:
    for part in reversed(keys.split(".")):
        value = {part: value}
    return value


# ---------------------------------------------------------------------------------- booleans

@pytest.mark.parametrize("word, value", [("true", True), ("True", True), ("TRUE", True), ("yes", True),
                                         ("on", True), ("false", False), ("False", False), ("no", False),
                                         ("off", False), (True, True), (False, False)])
def test_every_boolean_key_reads_words_of_the_command_line(schema, word, value):
    keys = boolean_keys(schema)
    assert {"strict_inputs", "sc.gibbs_unringing", "fc.detrend", "model.training.mixed_precision"} <= set(keys)
    for key in keys:
        config = coerce_booleans(nested(key, word), schema)
        assert config == nested(key, value), key


def test_other_values_are_left_to_the_schema(schema):
    config = {"bids_dir": "true", "atlases": ["yes"], "sc": {"denoise": "none", "step_mm": 1.0},
              "fc": {"fmriprep_dir": "no"}, "custom_atlases": {"x": {"image": "on", "table": "t"}},
              "model": {"training": {"mixed_precision": 1}}}
    expected = copy.deepcopy(config)
    assert coerce_booleans(config, schema) == expected  # strings of string keys, numbers: untouched


def test_a_word_that_is_not_a_boolean_names_the_key(schema):
    with pytest.raises(ConfigError, match=r"^'strict_inputs': 'maybe' is not of type 'boolean'; give true or false"):
        coerce_booleans({"strict_inputs": "maybe"}, schema)
    with pytest.raises(ConfigError, match=r"^'model.architecture.edge_mask': '1x' is not of type 'boolean'"):
        coerce_booleans({"model": {"architecture": {"edge_mask": "1x"}}}, schema)


# ------------------------------------------------------------------------------------- paths

def test_a_missing_bids_folder_is_named_with_what_was_expected(tmp_path):
    with pytest.raises(ConfigError) as error:
        check_paths({"bids_dir": "/no/such/dir", "connectomes_dir": None})
    assert str(error.value) == ("bids_dir '/no/such/dir': BIDS folder not found (expected a folder with "
                                "participants.tsv and sub-* folders).")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"^bids_dir '.*empty': no participants.tsv in this folder \(expected"):
        check_paths({"bids_dir": str(tmp_path / "empty")})
    check_paths({"bids_dir": str(bids_folder(tmp_path / "bids"))})
    check_paths({"bids_dir": "demo", "connectomes_dir": None})  # made by the workflow


def test_a_missing_connectomes_folder_is_named_and_bids_dir_is_then_not_read(tmp_path):
    with pytest.raises(ConfigError, match=r"^connectomes_dir '/no/conn': connectomes folder not found \(expected a "
                                          r"folder with sub-<label>/dwi, .* and participants.tsv in it or in bids_dir"):
        check_paths({"bids_dir": "/no/such/dir", "connectomes_dir": "/no/conn"})
    check_paths({"bids_dir": "/no/such/dir", "connectomes_dir": str(bids_folder(tmp_path / "conn"))})


def test_missing_fmriprep_folder_and_custom_atlas_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"^fc.fmriprep_dir '/no/fmriprep': fMRIPrep folder not found"):
        check_paths({"bids_dir": "demo", "fc": {"fmriprep_dir": "/no/fmriprep"}})
    image = tmp_path / "mine.nii.gz"
    image.write_bytes(b"")
    config = {"bids_dir": "demo", "atlases": ["mine"],
              "custom_atlases": {"mine": {"image": str(image), "table": str(tmp_path / "mine.tsv")}}}
    with pytest.raises(ConfigError, match=r"^custom_atlases.mine.table '.*mine.tsv': file not found"):
        check_paths(config)
    check_paths({**config, "atlases": ["desikankilliany"]})  # an atlas not in use is not read


# ------------------------------------------------------------------------------------ atlases

def test_known_atlases_are_the_built_in_ones_synth_and_the_custom_ones():
    assert known_atlases({"custom_atlases": {"mine": {}, "power264": {}}}) == [*BUILT_IN_ATLASES, "synth", "mine"]


def test_an_atlas_typo_lists_the_valid_names():
    with pytest.raises(ConfigError) as error:
        check_atlases({"bids_dir": "demo", "atlases": ["desikankilliany", "power246"],
                       "custom_atlases": {"mine": {}}})
    message = str(error.value)
    assert message.startswith("'atlases' must be among {'desikankilliany', 'dosenbach160', 'power264', "
                              "'seitzman300', 'synth', 'mine'}; 'power246' was provided (did you mean 'power264'?).")
    check_atlases({"bids_dir": "demo", "atlases": ["synth", "mine", *BUILT_IN_ATLASES], "custom_atlases": {"mine": {}}})


def test_synth_on_real_data_says_it_is_the_demos_atlas_and_what_to_pass(tmp_path):
    bids = str(bids_folder(tmp_path / "bids"))
    config = {"bids_dir": bids, "atlases": ["synth"], "custom_atlases": {"mine": {}}, "model": {"atlas": None}}
    with pytest.raises(ConfigError) as error:
        check_atlases(config)
    message = str(error.value)
    assert "'synth' is the demo cohort's own atlas" in message and repr(bids) in message
    assert "{'desikankilliany', 'dosenbach160', 'power264', 'seitzman300', 'mine'}" in message
    assert f"--config bids_dir={bids} 'atlases=[desikankilliany]'" in message and "--configfile" in message
    check_atlases({**config, "bids_dir": "demo"})
    check_atlases({**config, "bids_dir": str(bids_folder(tmp_path / "synthetic", synthetic=True))})  # connex synth
    check_atlases({**config, "connectomes_dir": bids})  # the model stages only: atlases is not read


def test_model_atlas_must_be_one_of_the_atlases_made():
    config = {"bids_dir": "demo", "atlases": ["synth", "power264"], "model": {"atlas": "power246"}}
    with pytest.raises(ConfigError, match=r"^'model.atlas' must be among 'atlases' \{'synth', 'power264'\} .*; "
                                          r"'power246' was provided \(did you mean 'power264'\?\)"):
        check_atlases(config)
    check_atlases({**config, "model": {"atlas": "power264"}})
    check_atlases({**config, "connectomes_dir": "/conn", "model": {"atlas": "schaefer400"}})  # the files' atlas


def test_check_config_reads_the_folders_first():
    with pytest.raises(ConfigError, match="^bids_dir '/no/such/dir': BIDS folder not found"):
        check_config({"bids_dir": "/no/such/dir", "atlases": ["synth"], "connectomes_dir": None})


# ------------------------------------------------------------------- what a user sees (dry runs)

def test_dry_run_stops_on_synth_with_real_data_and_on_an_atlas_typo(tmp_path):
    bids = bids_folder(tmp_path / "bids")
    synth = dry_run(tmp_path / "run1", f"bids_dir={bids}")
    log = synth.stdout + synth.stderr
    assert synth.returncode != 0
    assert "'synth' is the demo cohort's own atlas" in log and "atlases=[desikankilliany]" in log
    assert "Missing input files" not in log
    typo = dry_run(tmp_path / "run2", f"bids_dir={bids}", "atlases=[power246]")
    log = typo.stdout + typo.stderr
    assert typo.returncode != 0
    assert "'atlases' must be among {'desikankilliany', " in log and "'power246' was provided" in log
    assert not (tmp_path / "run1" / "results").exists() and not (tmp_path / "run2" / "results").exists()


def test_dry_run_takes_command_line_booleans_and_names_a_wrong_one(tmp_path):
    ok = dry_run(tmp_path / "run1", "strict_inputs=true", "sc={gibbs_unringing: yes}")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "synthesize_demo" in ok.stdout and "bids_inventory" in ok.stdout
    wrong = dry_run(tmp_path / "run2", "strict_inputs=maybe")
    assert wrong.returncode != 0
    assert "'strict_inputs': 'maybe' is not of type 'boolean'" in wrong.stdout + wrong.stderr
