"""The workflow benchmark's summary of Snakemake's benchmark files."""

import pytest

from connex.benchmarks.workflow import rule_benchmarks

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_rule_table_sums_jobs_and_takes_the_peak_memory(tmp_path):
    for rule, jobs in {"tractography": [(30.0, "412.5"), (50.0, "640.1"), (40.0, "500.0")],
                       "report": [(2.0, "NA")]}.items():
        (tmp_path / rule).mkdir()
        for k, (seconds, rss) in enumerate(jobs):
            (tmp_path / rule / f"sub-0{k}.tsv").write_text(HEADER + f"{seconds}\t0:00:{int(seconds)}\t{rss}"
                                                           f"\t1\t1\t1\t1\t1\t90\t{seconds}\n")
    (tmp_path / "synthesize_demo.tsv").write_text(HEADER)  # not a rule folder: ignored
    table = rule_benchmarks(tmp_path)
    assert table["rule"].tolist() == ["tractography", "report"]  # slowest first
    row = table.iloc[0]
    assert (row["jobs"], row["median_s"], row["total_s"]) == (3, 40.0, 120.0)
    assert row["peak_rss_mb"] == pytest.approx(640.1)
    assert table.iloc[1]["peak_rss_mb"] != table.iloc[1]["peak_rss_mb"]  # NaN: too short to sample
