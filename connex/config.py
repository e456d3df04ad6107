"""Checks of the workflow configuration that the schema cannot make, run by the Snakefile while
it is parsed, so that a wrong setting stops the run before any job, with one message that names
the key and says what was expected.

- :func:`coerce_booleans` (before the schema's ``validate``): ``--config`` hands Snakemake
  ``True``/``False`` as booleans but ``true``, and every value inside a YAML mapping
  (``sc={gibbs_unringing: true}``), as strings; the schema's boolean keys read them here.
- :func:`check_config` (after ``validate``, which fills in the defaults): :func:`check_paths`
  (the input folders exist), :func:`check_atlases` (every atlas name exists, and ``synth``
  only for a synthetic cohort) and :func:`check_sc_weight` (a weight this pipeline makes, unless
  the connectomes come from ``connectomes_dir``).

Cheap to import: the workflow reads it at every start.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml

from connex.anat.atlases import BUILT_IN_ATLASES, SYNTH_ATLAS
from connex.errors import ConfigError
from connex.registry import SC_WEIGHTS

#: Where a synthetic cohort (the demo, or one made by ``connex synth``) keeps that atlas's table.
SYNTH_TABLE = Path("derivatives") / "groundtruth" / "atlas-synth_dseg.tsv"

#: The words a boolean key accepts as a string (any case), as YAML 1.1 reads them.
BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}

BIDS_LAYOUT = "expected a folder with participants.tsv and sub-* folders"
CONNECTOMES_LAYOUT = ("expected a folder with sub-<label>/dwi, sub-<label>/func *_relmat.tsv files, and "
                      "participants.tsv in it or in bids_dir")


def load_schema(path: str | Path) -> dict:
    """The config schema (YAML) as a dict."""
    return yaml.safe_load(Path(path).read_text())


# ---------------------------------------------------------------------------------- booleans

def coerce_booleans(config: dict, schema: dict, key: str = "") -> dict:
    """Turn the strings ``true``/``false`` (also ``yes``/``no``, ``on``/``off``, any case) into
    booleans at every key the schema types as boolean, in place; return ``config``.

    Parameters
    ----------
    config : dict
        The config (or a part of it), as Snakemake read it from the config files and ``--config``.
    schema : dict
        The JSON schema of ``config`` (its ``properties``, ``additionalProperties`` and ``items``
        are followed).
    key : str
        The dotted key of ``config`` (for messages).

    Raises
    ------
    ConfigError
        Another string at a boolean key: ``"'strict_inputs': 'maybe' is not of type 'boolean'; ..."``.
    """
    if isinstance(config, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for name, value in config.items():
            spec = properties.get(name, extra if isinstance(extra, dict) else None)
            if spec is not None:
                config[name] = _coerced(value, spec, f"{key}.{name}" if key else str(name))
    elif isinstance(config, list) and isinstance(schema.get("items"), dict):
        for index, value in enumerate(config):
            config[index] = _coerced(value, schema["items"], f"{key}[{index}]")
    return config


def _coerced(value, spec: dict, key: str):
    types = spec.get("type", [])
    types = [types] if isinstance(types, str) else types
    if isinstance(value, str) and "boolean" in types and "string" not in types:
        if value.strip().lower() in BOOLEAN_WORDS:
            return BOOLEAN_WORDS[value.strip().lower()]
        raise ConfigError(f"{key!r}: {value!r} is not of type 'boolean'; give true or false "
                          "(yes/no and on/off also work).")
    if isinstance(value, dict | list):
        coerce_booleans(value, spec, key)
    return value


# ------------------------------------------------------------------------------------- paths

def check_paths(config: dict) -> None:
    """The input folders the config names exist: ``bids_dir`` (unless ``demo``) with its
    ``participants.tsv`` and ``fc.fmriprep_dir`` (both unread with ``connectomes_dir``), or
    ``connectomes_dir`` with a ``participants.tsv`` in it or in ``bids_dir``
    (:func:`participants_folder`); the files of the custom atlases in use.

    Raises
    ------
    ConfigError
        ``"bids_dir '/no/such/dir': BIDS folder not found (expected a folder with
        participants.tsv and sub-* folders)."``, and the like for the other keys.
    """
    connectomes = config.get("connectomes_dir")
    if connectomes:
        if not Path(connectomes).is_dir():
            raise ConfigError(f"connectomes_dir {connectomes!r}: connectomes folder not found ({CONNECTOMES_LAYOUT}).")
        participants_folder(connectomes, config.get("bids_dir", "demo"))
        return
    bids = config.get("bids_dir", "demo")
    if bids != "demo":
        _check_folder("bids_dir", bids, "BIDS folder", BIDS_LAYOUT)
    fmriprep = config.get("fc", {}).get("fmriprep_dir")
    if fmriprep and not Path(fmriprep).is_dir():
        raise ConfigError(f"fc.fmriprep_dir {fmriprep!r}: fMRIPrep folder not found (expected fMRIPrep's "
                          "output folder, with sub-<label>/func; null runs ConneX's own BOLD preprocessing).")
    custom = config.get("custom_atlases", {})
    for name in config.get("atlases", []):
        for part in ("image", "table") if name in custom else ():
            path = custom[name].get(part, "")
            if not Path(path).is_file():
                raise ConfigError(f"custom_atlases.{name}.{part} {path!r}: file not found (the atlas's "
                                  f"{'label image, NIfTI in MNI152 space' if part == 'image' else 'region TSV'}).")


def participants_folder(connectomes_dir: str | Path, bids_dir: str | Path | None) -> Path:
    """The folder whose ``participants.tsv`` the model stages read with ``connectomes_dir``: that
    folder when it has one, else ``bids_dir`` (the raw dataset, not ``demo``; XCP-D and QSIRecon
    derivatives have no participants.tsv of their own).

    Raises
    ------
    ConfigError
        Neither has one: ``"connectomes_dir '/c': no participants.tsv in this folder nor in bids_dir
        '/b' (looked for /c/participants.tsv and /b/participants.tsv; ...)."``
    """
    own = Path(connectomes_dir) / "participants.tsv"
    if own.is_file():
        return Path(connectomes_dir)
    if bids_dir and str(bids_dir) != "demo":
        theirs = Path(bids_dir) / "participants.tsv"
        if theirs.is_file():
            return Path(bids_dir)
        raise ConfigError(f"connectomes_dir {str(connectomes_dir)!r}: no participants.tsv in this folder nor in "
                          f"bids_dir {str(bids_dir)!r} (looked for {own} and {theirs}; the model stages read "
                          "participant_id and the labels from the first of the two that exists).")
    raise ConfigError(f"connectomes_dir {str(connectomes_dir)!r}: no participants.tsv in this folder, and no bids_dir "
                      f"to read it from (looked for {own}; bids_dir is 'demo'). Add a participants.tsv to "
                      "connectomes_dir, or set bids_dir to the raw BIDS dataset whose participants.tsv lists these "
                      "subjects.")


def _check_folder(key: str, path: str, what: str, layout: str) -> None:
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{key} {path!r}: {what} not found ({layout}).")
    if not (folder / "participants.tsv").is_file():
        raise ConfigError(f"{key} {path!r}: no participants.tsv in this folder ({layout}).")


# ------------------------------------------------------------------------------------ atlases

def known_atlases(config: dict) -> list[str]:
    """Every atlas name the config can use: the built-in ones, ``synth``, then custom_atlases."""
    names = [*BUILT_IN_ATLASES, SYNTH_ATLAS]
    return names + [name for name in config.get("custom_atlases", {}) if name not in names]


def check_atlases(config: dict) -> None:
    """Every name of ``atlases`` is a built-in atlas, ``synth`` or one of ``custom_atlases``;
    ``synth`` only for the demo or a synthetic cohort (a ``bids_dir`` with
    ``derivatives/groundtruth/atlas-synth_dseg.tsv``); ``model.atlas``, when set, is one of
    ``atlases`` (the connectomes this run makes). Nothing is checked with ``connectomes_dir``:
    the model stages then read the atlas of its files, not ``atlases``.

    Raises
    ------
    ConfigError
        ``"'atlases' must be among {'desikankilliany', ...}; 'power246' was provided."``
    """
    if config.get("connectomes_dir"):
        return
    atlases = list(config.get("atlases", []))
    known = known_atlases(config)
    for name in atlases:
        if name not in known:
            raise ConfigError(f"'atlases' must be among {_listed(known)}; {name!r} was provided"
                              f"{_did_you_mean(name, known)}. Your own atlases go under 'custom_atlases' "
                              "(atlases/README.md).")
    bids = config.get("bids_dir", "demo")
    if SYNTH_ATLAS in atlases and SYNTH_ATLAS not in config.get("custom_atlases", {}) and bids != "demo" \
            and not (Path(bids) / SYNTH_TABLE).is_file():
        real = [name for name in known if name != SYNTH_ATLAS]
        raise ConfigError(
            f"'atlases' {atlases}: 'synth' is the demo cohort's own atlas (config/config.yaml sets it for the "
            f"demo), and bids_dir {bids!r} is not a synthetic cohort (no {SYNTH_TABLE.as_posix()}). "
            f"Pick atlases among {_listed(real)} (built in, or yours under custom_atlases): e.g. "
            f"--config bids_dir={bids} 'atlases=[desikankilliany]', or set 'atlases' in your own config file "
            "(--configfile my_config.yaml).")
    model_atlas = config.get("model", {}).get("atlas")
    if model_atlas and model_atlas not in atlases:
        raise ConfigError(f"'model.atlas' must be among 'atlases' {_listed(atlases)} (the connectomes this run "
                          f"makes); {model_atlas!r} was provided{_did_you_mean(model_atlas, atlases)}. Add it to "
                          "'atlases', or leave model.atlas null (the first of 'atlases').")


def check_sc_weight(config: dict) -> None:
    """``model.sc_weight`` is one of the SC weights this pipeline makes (:data:`connex.registry.SC_WEIGHTS`),
    unless the connectomes come from ``connectomes_dir``, whose files may name others (QSIRecon's
    ``sift_invnodevol_radius2_count``; the schema takes any such name).

    Raises
    ------
    ConfigError
        ``"'model.sc_weight' must be among {'count', ...} (...); 'radius2_count' was provided."``
    """
    weight = config.get("model", {}).get("sc_weight", SC_WEIGHTS[0])
    if config.get("connectomes_dir") or weight in SC_WEIGHTS:
        return
    raise ConfigError(f"'model.sc_weight' must be among {_listed(SC_WEIGHTS)} (the SC weights this pipeline makes); "
                      f"{weight!r} was provided{_did_you_mean(weight, SC_WEIGHTS)}. Other names (QSIRecon's "
                      "measures) are read from a connectomes_dir only.")


def _listed(names) -> str:
    return "{" + ", ".join(repr(name) for name in names) + "}"


def _did_you_mean(name: str, names) -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ------------------------------------------------------------------------------------ together

def check_config(config: dict) -> None:
    """The checks the schema cannot make, in order: input folders, then atlases, then the SC weight
    (after ``validate``, which fills in the defaults)."""
    check_paths(config)
    check_atlases(config)
    check_sc_weight(config)
