"""Report pieces of the CLV stage, pure: JSON-safe values, MLflow metric names, fit sections, the summary lines."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.clv.model import ClvModel


def clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def numeric_leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Finite numeric leaves of a nested dict as MLflow-safe dotted metric names ('+' spelled 'plus')."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        name = f"{prefix}{str(key).replace('+', 'plus')}"
        if isinstance(value, dict):
            out.update(numeric_leaves(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out


def fit_section(model: ClvModel, draws_report: dict[str, Any]) -> dict[str, Any]:
    """Fit report: parameters, log-likelihoods, penalizer attempts, warnings, standard errors (spend None if absent)."""
    section: dict[str, Any] = {}
    for part, rep in (("purchases", model.purchases), ("spend", model.spend)):
        section[part] = None if rep is None else {
            "model": rep.model, "params": rep.params, "log_likelihood": rep.log_likelihood,
            "penalizer": rep.penalizer, "n_customers": rep.n_customers, "n_unique_rows": rep.n_unique_rows,
            "seconds": rep.seconds, "attempts": [a.__dict__ for a in rep.attempts], "warnings": list(rep.warnings),
            "n_excluded": rep.n_excluded, **{k: v for k, v in rep.diagnostics.items()}}
    section["std_errors"] = draws_report["std_errors"]
    section["uncertainty_warnings"] = draws_report["warnings"]
    return section



def summary_lines(report: dict[str, Any]) -> list[str]:
    """What main() prints: the selection, the holdout comparison (when spend exists) and the champion."""
    sel_ = report["selection"]
    lines = [f"  clv model: {report['model']} ({sel_.get('rule', '')})"]
    for name, cand in (sel_.get("candidates") or {}).items():
        value = cand["validation"].get(sel_.get("metric", ""))
        shown = "-" if value is None else f"{value:.6g}"
        lines.append(f"    {name:12s} {cand['status']:8s} {sel_.get('metric')}={shown}"
                     f"  {'' if cand['status'] == 'fitted' else cand['reason']}")
    side = report.get("comparison")
    if side:
        for key in ("revenue_mae", "revenue_rmse", "revenue_spearman", "revenue_gini", "revenue_total_error_pct"):
            btyd, ml = (side[key][k] for k in ("btyd", "ml"))
            lines.append(f"  {key:26s} btyd={btyd:.4g}  ml={'-' if ml is None else f'{ml:.4g}'}")
        cov = report["coverage"]
        lines.append(f"  coverage {cov['level']:.0%}: parameter={cov['revenue_parameter']:.3f} "
                     f"predictive={cov['revenue_predictive']:.3f}; champion: {report['champion']['chosen']}")
    else:
        lines.append(f"  {report['spend']['reason']}")
    return lines

