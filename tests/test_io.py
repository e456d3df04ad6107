"""Outputs are written whole or not at all."""

import pandas as pd
import pytest

from connex.inputs.io import atomic_path, write_tsv


def test_failed_write_leaves_neither_target_nor_temporary_file(tmp_path):
    target = tmp_path / "sub-01_relmat.tsv"
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_temporary_file_of_a_killed_run_is_removed_when_the_target_is_written_again(tmp_path):
    target = tmp_path / "sub-01_relmat.tsv"
    stale = tmp_path / ".sub-01_relmat.tsv.k3j9x.tsv"  # what SIGKILL leaves mid-write
    other = tmp_path / ".sub-02_relmat.tsv.a1b2c.tsv"  # another target's: not ours to remove
    stale.write_text("half a tab")
    other.write_text("in progress")
    write_tsv(pd.DataFrame({"a": [1.5]}), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, target.name]
    assert pd.read_csv(target, sep="\t")["a"].tolist() == [1.5]
