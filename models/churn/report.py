"""Churn report text, pure: reports/churn.md from the report dict and the flat MLflow metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.churn import evaluate

TABLE_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10", "capture_top10", "lift_top20")


def _sample_lines(sample: dict[str, Any] | None) -> list[str]:
    """The training-sample sentence (engine=spark) and a blank line, or nothing."""
    if not sample:
        return []
    how = "all of them" if sample["sampled_rows"] == sample["rows"] else "a stratified (cutoff x label) sample"
    return [
        f"Training rows (engine={sample['engine']}): {sample['sampled_rows']:,} of {sample['rows']:,} collected to "
        f"the driver ({how}; churn.max_train_rows={sample['max_train_rows']:,}).",
        "",
    ]


def _ci(row: dict[str, Any]) -> str:
    """'[lo, hi]' of a comparison row's delta interval, or ''."""
    return f"[{row['delta_ci95_low']:+.4f}, {row['delta_ci95_high']:+.4f}]" if "delta_ci95_low" in row else ""


def markdown_report(report: dict[str, Any], table: pd.DataFrame) -> str:
    """reports/churn.md: the champion and its validation, the c_e table, deltas to the best baseline, ablation."""
    champ = report["champion"]
    lines = [
        f"# Churn backtest at {report['eval_cutoff']} (labels to {report['as_of']}, "
        f"horizon {report['horizon_days']} days)",
        "",
        f"{report['eval_rows']:,} customers, churn rate {report['eval_churn_rate']:.4f}.",
        "",
        *_sample_lines(report.get("training_sample")),
        f"## Champion: {champ['name']}",
        "",
        f"Chosen on {champ['selected_on']} (training period only; the evaluation cutoff is never read for the "
        f"choice). Rule: {champ.get('rule', '-')}.",
        "",
    ]
    if champ["validation"]:
        val = pd.DataFrame(champ["validation"]).T.rename_axis("model").reset_index()
        lines += [evaluate.markdown_table(val, ["auc", "log_loss", "ece", "n"]), ""]
    for metric, margin in champ["margin_vs_best_baseline"].items():
        ci = margin.get("delta_ci95")
        lines.append(
            f"- validation {metric}: {margin['champion_value']:.4f} vs best baseline {margin['best_baseline']} "
            f"{margin['best_baseline_value']:.4f} (delta {margin['delta']:+.4f}"
            + (f", 95% CI [{ci[0]:+.4f}, {ci[1]:+.4f}])" if ci else ")")
        )
    lines += [f"- {step}" for step in champ.get("steps", [])]
    lines += [
        "",
        f"## Every candidate at the evaluation cutoff {report['eval_cutoff']}",
        "",
        evaluate.markdown_table(table, [c for c in TABLE_METRICS if c in table.columns]),
        "",
        "| candidate | metric | value | best baseline | value | delta | 95% CI | better |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cand, rows in report["candidates_vs_best_baseline"].items():
        for row in rows:
            if row["metric"] not in ("roc_auc", "log_loss", "brier", "ece"):
                continue
            lines.append(
                f"| {cand}{' (champion)' if cand == champ['name'] else ''} | {row['metric']} | {row['model']:.4f} | "
                f"{row['best_baseline']} | {row['best_baseline_value']:.4f} | {row['delta']:+.4f} | {_ci(row)} | "
                f"{row['model_better']} |"
            )
    if report.get("ablation"):
        abl = pd.DataFrame(report["ablation"])
        abl["model"] = abl["feature_set"] + " / prior " + abl["prior"]
        lines += [
            "",
            "## Ablation (LightGBM)",
            "",
            evaluate.markdown_table(abl, ["n_features", "roc_auc", "log_loss", "brier", "ece", "lift_top10"]),
        ]
    if report["notes"]:
        lines += ["", "## Notes", "", *[f"- {n}" for n in report["notes"]]]
    return "\n".join(lines) + "\n"


def flat_metrics(report: dict[str, Any]) -> dict[str, float]:
    """Flat MLflow metrics: the champion, every candidate at c_e and on validation, deltas, diagnostics."""
    champ = report["champion"]
    out = {f"champion.{k}": v for k, v in report["model"].items()}
    for name, values in report["candidates"].items():
        out.update({f"candidate.{name}.{k}": v for k, v in values.items()})
    for name, values in champ["validation"].items():
        out.update({f"validation.{name}.{k}": v for k, v in values.items()})
    out.update({f"delta_vs_best_baseline.{r['metric']}": r["delta"] for r in report["comparison"]})
    out.update({f"validation_margin.{m}": v["delta"] for m, v in champ["margin_vs_best_baseline"].items()})
    for prefix, info in (("backtest", report["protocol"]), ("refit", report["refit"])):
        out.update({f"{prefix}.holdout.{k}": v for k, v in (info.get("holdout") or {}).items()})
        if info.get("best_iteration"):
            out[f"{prefix}.best_iteration"] = info["best_iteration"]
    for row in report["ablation"]:
        tag = f"ablation.{row['feature_set']}.prior_{row['prior']}"
        out.update({f"{tag}.{k}": row[k] for k in ("roc_auc", "log_loss", "pr_auc", "ece")})
    out["seconds"] = report["seconds"]
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and np.isfinite(v)}
