"""The cohort report: one self-contained HTML page (figures embedded)."""

from __future__ import annotations

import base64
import html
import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from connex import __version__
from connex.inputs.bids import read_inventory
from connex.inputs.io import write_text
from connex.report.cohort_qc import MEASURES, format_value, rules_text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tr.excluded td { background: #fff3e0; }
td.flagged { background: #ffd6d6; font-weight: bold; }
td.flags { color: #b00000; min-width: 16em; }
div.wide { overflow-x: auto; }
table.qc { font-size: 0.75em; }
p.flags { color: #b00000; font-weight: bold; }
p.warning { color: #8a5a00; }
nav a { margin-right: 1em; }
img { max-width: 100%; border: 1px solid #ddd; }
.summary span { display: inline-block; margin-right: 2em; font-size: 1.1em; }
"""


def write_report(*, availability_tsv: str | Path, qc_figures: dict[str, list[str | Path]], out_html: str | Path,
                 title: str = "ConneX report", dataset: str = "", qc_tsv: str | Path | None = None,
                 metrics_tsv: str | Path | None = None, model_figures: list[str | Path] = (),
                 qcfc_json: str | Path | None = None, qcfc_figure: str | Path | None = None) -> Path:
    """Write the report: cohort summary, the availability table, the cohort QC table with outliers
    flagged, the model's results, and each participant's QC numbers and figures.

    Parameters
    ----------
    availability_tsv : path
        The table written by the input inventory.
    qc_figures : dict
        Participant id to the PNGs of its QC figures, in the order to show them.
    out_html : path
    title, dataset : str
        Page title and a line naming the input dataset.
    qc_tsv : path, optional
        The cohort QC table (:func:`connex.cohort_qc.cohort_qc_table`).
    metrics_tsv, model_figures : path, optional
        The model's metrics table and figures (ROC, confusion matrices, importance).
    qcfc_json, qcfc_figure : path, optional
        QC-FC's summary and figure (:mod:`connex.report.qcfc`).
    """
    table = read_inventory(availability_tsv)
    counts = {
        "participants": table["participant_id"].nunique(),
        "with T1w": int(table["use_anat"].sum()),
        "with SC inputs": int(table["use_sc"].sum()),
        "with FC inputs": int(table["use_fc"].sum()),
        "modelled": int(table["use_model"].sum()),
    }
    labels = table.loc[table["use_model"], "label"].value_counts().to_dict()
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>Dataset: <code>{html.escape(dataset)}</code>. Made by ConneX {__version__} on "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.</p>",
             "<h2>Cohort</h2><p class='summary'>"
             + "".join(f"<span><b>{v}</b> {html.escape(k)}</span>" for k, v in counts.items())
             + "</p>",
             "<p>Modelled participants per class: "
             + (", ".join(f"{html.escape(str(k))}: {v}" for k, v in labels.items()) or "none") + "</p>",
             "<nav><a href='#inputs'>Inputs</a><a href='#qc'>Cohort QC</a>"
             + ("<a href='#qcfc'>QC-FC</a>" if qcfc_json is not None else "")
             + ("<a href='#model'>Model</a>" if metrics_tsv is not None else "")
             + "<a href='#participants'>Participants</a></nav>",
             "<h2 id='inputs'>Inputs found</h2>", _availability_html(table)]
    qc = (pd.read_csv(qc_tsv, sep="\t", keep_default_na=False, na_values=["n/a"], dtype={"session": str})
          if qc_tsv is not None else None)
    if qc is not None:
        parts += ["<h2 id='qc'>Cohort QC</h2>", _qc_html(qc)]
    if qcfc_json is not None:
        parts += ["<h2 id='qcfc'>Motion left in the functional connectomes (QC-FC)</h2>", _qcfc_html(qcfc_json)]
        parts += [_image(Path(qcfc_figure))] if qcfc_figure is not None and Path(qcfc_figure).is_file() else []
    if metrics_tsv is not None:
        parts += ["<h2 id='model'>Model: cross-validated classification</h2>", _metrics_html(metrics_tsv)]
        parts += [_image(Path(f)) for f in model_figures if Path(f).is_file()]
    parts.append("<h2 id='participants'>Participants</h2>")
    for participant_id in table["participant_id"].unique():
        figures = [Path(f) for f in qc_figures.get(participant_id, []) if Path(f).is_file()]
        parts.append(f"<h3 id='{participant_id}'>{participant_id}</h3>")
        if qc is not None:  # one row per session in a dataset with sessions
            parts += [_participant_qc_html(row) for _, row in qc[qc["participant_id"] == participant_id].iterrows()]
        parts += [_image(figure) for figure in figures]
        if not figures:
            parts.append("<p>No QC figure (no usable input).</p>")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
    return write_text(page, out_html)


def _image(figure: Path) -> str:
    return (f"<img alt='{html.escape(figure.name)}' src='data:image/png;base64,"
            f"{base64.b64encode(figure.read_bytes()).decode()}'>")


def _qc_html(qc: pd.DataFrame) -> str:
    """The cohort QC table: one row per participant, flagged values in red, the reasons at the end."""
    header = "<th>participant</th>" + "".join(
        f"<th>{html.escape(m.label)}{f' ({m.unit})' if m.unit else ''}</th>"
        for m in MEASURES.values()) + "<th>flags</th>"
    rows = []
    for _, row in qc.iterrows():
        flags = str(row["flags"]) if isinstance(row["flags"], str) else ""
        name = _visit_name(row)
        cells = f"<td><a href='#{html.escape(row['participant_id'])}'>{html.escape(name)}</a></td>"
        for column, measure in MEASURES.items():
            flagged = any(flag.startswith(measure.label) for flag in flags.split("; "))
            cells += f"<td class='{'flagged' if flagged else ''}'>{format_value(row[column])}</td>"
        rows.append(f"<tr>{cells}<td class='flags'>{html.escape(flags)}</td></tr>")
    n_flagged = int((qc["flags"].fillna("") != "").sum())
    return (f"<p>{n_flagged} of {len(qc)} participants flagged. {html.escape(rules_text())} "
            "Empty cells: the stage did not run for that participant.</p>"
            f"<div class='wide'><table class='qc'><tr>{header}</tr>{''.join(rows)}</table></div>")


def _qcfc_html(qcfc_json: str | Path) -> str:
    """QC-FC's figures in a sentence and a table."""
    summary = json.loads(Path(qcfc_json).read_text())
    covariates = ", ".join(summary["Covariates"]) or "none"
    rows = [("participants", summary["Participants"]), ("covariates held fixed", covariates),
            ("edges", summary["Edges"]), ("median |QC-FC|", summary["MedianAbsoluteQCFC"]),
            ("median |QC-FC| of noise alone (no motion effect)", summary["MedianAbsoluteQCFCWithoutMotionEffect"]),
            ("edges with p < 0.05 (uncorrected)", summary["FractionSignificant"]),
            ("edges with p < 0.05 (FDR)", summary["FractionSignificantFDR"]),
            ("distance dependence (Spearman rho of QC-FC with distance)", summary["DistanceDependence"])]
    text = ("<p>Each edge's partial correlation across participants with mean framewise displacement "
            "(Ciric et al. 2017). Well-denoised data: median |QC-FC| near the value of noise alone, about 5 % "
            "of edges at p < 0.05 uncorrected and none after FDR, no distance dependence (motion raises "
            "short-range FC and lowers long-range FC). Compare confound strategies (<code>fc.strategy</code>) "
            "on these figures.</p>")
    warning = f"<p class='warning'>{html.escape(summary['Warning'])}</p>" if summary.get("Warning") else ""
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in rows)
    return text + warning + f"<table>{table}</table>"


def _visit_name(row: pd.Series) -> str:
    """sub-01, or sub-01 ses-1 for a row of a dataset with sessions."""
    session = row.get("session")
    return row["participant_id"] + (f" ses-{session}" if isinstance(session, str) and session else "")


def _participant_qc_html(row: pd.Series) -> str:
    session = row.get("session")
    values = [f"session <b>{html.escape(session)}</b>"] if isinstance(session, str) and session else []
    values += [f"{html.escape(m.label)}: <b>{format_value(row[c])}</b>{m.unit_suffix}"
              for c, m in MEASURES.items() if not pd.isna(row[c])]
    flags = row["flags"] if isinstance(row["flags"], str) and row["flags"] else ""
    return ("<p>" + "; ".join(values) + "</p>"
            + (f"<p class='flags'>Flagged: {html.escape(flags)}</p>" if flags else ""))


def _metrics_html(metrics_tsv: str | Path) -> str:
    """The metrics table: mean ± sd over splits of each metric, one row per model."""
    table = pd.read_csv(metrics_tsv, sep="\t")
    metrics = ["roc_auc", "balanced_accuracy", "accuracy", "sensitivity", "specificity", "f1"]
    header = "<th>model</th><th>splits</th>" + "".join(f"<th>{m.replace('_', ' ')}</th>" for m in metrics)
    if "p_value" in table:
        header += "<th>permutation p</th>"
    paired = "best_baseline" in table  # metrics.tsv written before the comparison existed has none
    if paired:
        header += "<th>vs best linear baseline</th>"
    rows = []
    for _, row in table.iterrows():
        cells = f"<td>{html.escape(str(row['model']))}</td><td>{row['n_splits']}</td>"
        cells += "".join(f"<td>{row[m + '_mean']:.3f} ± {row[m + '_std']:.3f}</td>" for m in metrics)
        if "p_value" in table:
            cells += f"<td>{row['p_value']:.3g}</td>"
        if paired:
            cells += f"<td>{_baseline_difference(row)}</td>"
        rows.append(f"<tr>{cells}</tr>")
    note = ("<p>Mean ± standard deviation over the test folds of every split; every model was trained and "
            "tested on the same splits.")
    if paired:
        note += (" <i>vs best linear baseline</i>: each graph model's test AUC minus that of the linear baseline "
                 "with the highest mean test AUC, split by split (mean over the splits where both AUCs are "
                 "defined), with the splits it wins (ties are counted apart) and the two-sided p-value of the "
                 "corrected resampled t-test (Nadeau &amp; Bengio 2003), which allows for the training subjects "
                 "the splits share; not corrected for the several models compared. The best baseline is picked "
                 "on the same test folds, which favours it.")
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>{note}</p>"


def _baseline_difference(row: pd.Series) -> str:
    """One cell, as "+0.030 AUC vs linear svm (wins 9/15 splits, p = 0.21)"; empty for the baselines."""
    if not isinstance(row["best_baseline"], str) or pd.isna(row["auc_diff_mean"]):
        return ""
    ties = int(row["splits_tied"])
    p = "n/a" if pd.isna(row["auc_diff_p"]) else f"{row['auc_diff_p']:.2g}"
    return (f"{row['auc_diff_mean']:+.3f} AUC vs {html.escape(row['best_baseline'].replace('_', ' '))} "
            f"(wins {int(row['splits_won'])}/{int(row['n_splits_paired'])} splits"
            f"{f', {ties} tied' if ties else ''}, p = {p})")


def _availability_html(table: pd.DataFrame) -> str:
    columns = ["participant_id", "session", "label", "site", "use_anat", "use_sc", "use_fc",
               "use_model", "reason"]
    header = "".join(f"<th>{c}</th>" for c in columns)
    rows = []
    for _, row in table.iterrows():
        complete = bool(row["use_anat"] and row["use_sc"] and row["use_fc"] and row["use_model"])
        cells = "".join(f"<td>{_cell(row[c])}</td>" for c in columns)
        rows.append(f"<tr class='{'' if complete else 'excluded'}'>{cells}</tr>")
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _cell(value) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "<b>no</b>"
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return html.escape(str(value))
