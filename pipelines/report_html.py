"""The HTML report's tables and page: plain data (dicts, frames) in, escaped self-contained HTML out."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE = "report.html.j2"
HIGHER_IS_BETTER = ("roc_auc", "pr_auc", "lift", "capture", "gini", "spearman")
LOWER_IS_BETTER = ("log_loss", "brier", "ece", "mae", "rmse", "abs_total_error_pct")
HEAT_RGB = (37, 99, 235)  # the cohort heat map colour at the highest retention


@dataclass(frozen=True)
class Cell:
    """One table cell: its text (escaped on output), a CSS class, an inline style, a tooltip."""

    text: str
    cls: str = ""
    style: str = ""
    title: str = ""


@dataclass(frozen=True)
class Table:
    """A titled table: header labels, rows of cells, an optional note under it."""

    id: str
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    note: str = ""
    classes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Figure:
    """An embedded image: a data: URI and its caption."""

    id: str
    caption: str
    src: str


def fmt(value: Any, decimals: int = 4) -> str:
    """A number for display: thousands separators, fixed decimals for reals, '–' when missing or not finite."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        number = float(value)
        return f"{number:,.{decimals}f}" if math.isfinite(number) else "–"
    return str(value)


def pct(value: Any, decimals: int = 1) -> str:
    """A share as a percentage, '–' when missing or not finite."""
    if not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        return "–"
    return f"{100 * float(value):.{decimals}f}%"


def direction(metric: str) -> int:
    """+1 when a higher value of the metric is better, -1 when lower is better, 0 when neither."""
    if metric.endswith(LOWER_IS_BETTER):
        return -1
    if metric.startswith(HIGHER_IS_BETTER) or metric.endswith(HIGHER_IS_BETTER):
        return 1
    return 0


def verdict(better: bool | None) -> Cell:
    """A ✓ / ✗ cell."""
    if better is None:
        return Cell("–")
    return Cell("✓ yes", "good") if better else Cell("✗ no", "bad")


def headline(ingest: Mapping, features: Mapping, churn: Mapping, clv: Mapping, scores: Mapping) -> list[dict]:
    """The headline cards: label, value, hint. CLV figures are the as_of scores' (the segment table's rows)."""
    model, backtest = churn.get("model", {}), clv.get("clv", {})
    months, h = clv.get("horizon_months", "?"), churn.get("horizon_days", features.get("horizon_days", "?"))
    champion, name = clv.get("champion", {}), (churn.get("champion") or {}).get("name", "churn model")
    at = f"as_of {scores.get('as_of', '?')}"
    fit = backtest.get(f"total_{months}m")
    return [
        {"label": "as of", "value": str(features.get("as_of", "–")),
         "hint": f"data source {ingest.get('source', '?')}; features use every transaction up to this day"},
        {"label": "customers scored", "value": fmt(scores.get("customers"), 0),
         "hint": f"one row each in outputs/customer_scores ({at})"},
        {"label": "churn rate (backtest)", "value": pct(churn.get("eval_churn_rate")),
         "hint": f"{fmt(churn.get('eval_rows'), 0)} customers at {churn.get('eval_cutoff', '?')} with no purchase "
                 f"in the next {h} days"},
        {"label": "mean predicted churn", "value": pct(scores.get("mean_churn_probability")),
         "hint": f"mean churn_probability at {at} (next {h} days)"},
        {"label": "churn ROC AUC", "value": fmt(model.get("roc_auc")),
         "hint": f"{name} at the evaluation cutoff, out of time (0.5 = random)"},
        {"label": "churn log loss", "value": fmt(model.get("log_loss")), "hint": f"{name}; lower is better"},
        {"label": "churn ECE", "value": fmt(model.get("ece")),
         "hint": f"{name}; expected calibration error (0 = perfectly calibrated)"},
        {"label": f"total CLV, {months} months", "value": fmt(scores.get("total_clv"), 0),
         "hint": f"sum of clv over the {fmt(scores.get('customers'), 0)} customers scored at {at} (= the segment "
                 f"table); the backtest fit at {churn.get('eval_cutoff', 'the evaluation cutoff')} gave "
                 f"{fmt(fit, 0)}"},
        {"label": f"mean CLV, {months} months", "value": fmt(scores.get("mean_clv"), 2),
         "hint": f"per customer scored at {at}, model {clv.get('model', '?')}"},
        {"label": "CLV purchase model", "value": str(clv.get("model", "–")),
         "hint": selection_hint(clv.get("selection"))},
        {"label": "CLV champion", "value": str(champion.get("chosen", "–")),
         "hint": str(champion.get("reason", ""))},
    ]


def selection_hint(selection: Any) -> str:
    """How the CLV purchase model was chosen, in a few words."""
    if not isinstance(selection, Mapping):
        return "no selection recorded"
    if not selection.get("candidates"):
        return str(selection.get("rule", "configured"))
    fitted = sum(1 for c in selection["candidates"].values() if c.get("status") == "fitted")
    return (f"best {selection.get('metric', '?')} of {fitted}/{len(selection['candidates'])} fitted candidates "
            f"({(selection.get('window') or {}).get('source', '?')})")


def best_cells(frame: pd.DataFrame, metrics: Iterable[str], exclude: Iterable[str] = ()) -> set[tuple[int, str]]:
    """(row position, metric) pairs holding the best value of each metric (ignoring excluded rows)."""
    keep = ~frame.iloc[:, 0].isin(list(exclude))
    best = set()
    for metric in metrics:
        sign = direction(metric)
        values = pd.to_numeric(frame[metric], errors="coerce").where(keep)
        if sign == 0 or values.notna().sum() == 0:
            continue
        target = values.max() if sign > 0 else values.min()
        best |= {(i, metric) for i, v in enumerate(values) if v == target}
    return best


def churn_models_table(table: pd.DataFrame) -> Table:
    """Every churn model and baseline on every metric (reports/churn_table.csv), the best per metric marked."""
    metrics = [c for c in table.columns if c != "model"]
    best = best_cells(table, metrics, exclude=["lightgbm_uncalibrated"])
    rows = []
    for i, record in enumerate(table.to_dict(orient="records")):
        name = str(record["model"])
        cls = "model" if name == "lightgbm" else ""
        rows.append([Cell(name, "name " + cls)] + [
            Cell(fmt(record[m]), "num best" if (i, m) in best else "num") for m in metrics
        ])
    return Table("churn-models", "Churn: LightGBM vs baselines", ["model", *metrics], rows,
                 "Evaluation cutoff, out of time. Bold: best value per metric among the calibrated model and "
                 "the baselines. Lower is better for log_loss, brier and ece.")


def churn_delta_table(comparison: list[Mapping]) -> Table:
    """LightGBM against the best baseline per metric: values, delta, bootstrap interval, verdict."""
    rows = []
    for row in comparison:
        ci = (f"[{row['delta_ci95_low']:+.4f}, {row['delta_ci95_high']:+.4f}]"
              if row.get("delta_ci95_low") is not None else "–")
        rows.append([
            Cell(str(row["metric"]), "name"), Cell(fmt(row["model"]), "num"), Cell(str(row["best_baseline"])),
            Cell(fmt(row["best_baseline_value"]), "num"), Cell(f"{row['delta']:+.4f}", "num"), Cell(ci, "num"),
            Cell("higher" if row.get("higher_is_better") else "lower"), verdict(row.get("model_better")),
        ])
    return Table("churn-vs-best", "Churn: deltas to the best baseline",
                 ["metric", "lightgbm", "best baseline", "baseline value", "delta", "95% CI of delta",
                  "better is", "lightgbm better"], rows,
                 "delta = lightgbm − best baseline; the interval is a paired bootstrap over customers.")


def clv_comparison_table(clv: Mapping) -> Table:
    """The BTYD model against the ML challenger on the holdout (reports/clv.json `comparison`)."""
    champion = clv.get("champion", {})
    rows = []
    for metric, values in clv.get("comparison", {}).items():
        btyd, ml = values.get("btyd"), values.get("ml")
        if metric.endswith("total_actual") or btyd is None or ml is None:
            continue
        sign = direction(metric)
        if metric.endswith("total_error_pct") and "abs" not in metric:
            better = abs(btyd) < abs(ml)  # signed error: closer to zero is better
        else:
            better = None if sign == 0 else (btyd > ml if sign > 0 else btyd < ml)
        cls = "name model" if metric == champion.get("metric") else "name"
        decimals = 2 if "total" in metric or "pct" in metric else 4
        rows.append([Cell(metric, cls), Cell(fmt(btyd, decimals), "num"), Cell(fmt(ml, decimals), "num"),
                     Cell(f"{ml - btyd:+,.{decimals}f}", "num"), verdict(better)])
    actual = {k: v.get("btyd") for k, v in clv.get("comparison", {}).items() if k.endswith("total_actual")}
    note = "; ".join(f"{k} = {fmt(v, 2)}" for k, v in actual.items())
    return Table("clv-vs-challenger", f"CLV: {clv.get('model', 'BTYD')} vs ML challenger",
                 ["metric", "btyd", "ml challenger", "delta (ml − btyd)", "btyd better"], rows,
                 f"Holdout after the evaluation cutoff. Champion: {champion.get('chosen', '?')} — "
                 f"{champion.get('reason', '')}. {note}")


def clv_selection_table(clv: Mapping) -> Table:
    """Every candidate purchase model: status, validation figures, chosen (reports/clv.json `selection`)."""
    selection = clv.get("selection")
    if not isinstance(selection, Mapping):
        return Table("clv-selection", "CLV: purchase model selection", ["model"], [],
                     "reports/clv.json has no `selection` section: the model was not chosen by validation.")
    metric = str(selection.get("metric", ""))
    shown = [metric] if metric else []
    candidates = selection.get("candidates") or {}
    for record in candidates.values():
        for m in (record.get("validation") or {}):
            if m not in shown and m not in ("customers", "repeat_customers"):
                shown.append(m)
    rows = []
    for name, record in candidates.items():
        values = record.get("validation") or {}
        chosen = name == selection.get("chosen")
        rows.append([Cell(str(name), "name model" if chosen else "name"), Cell(str(record.get("status", "?")),
                     "good" if record.get("status") == "fitted" else "bad")]
                    + [Cell(fmt(values.get(m)), "num best" if chosen and m == metric else "num") for m in shown]
                    + [Cell("✓ chosen" if chosen else "", "good" if chosen else ""),
                       Cell("; ".join([str(record.get("reason", ""))] + [str(n) for n in record.get("notes") or []]))])
    if not candidates:
        rows.append([Cell(str(selection.get("chosen", "?")), "name model"), Cell("configured")]
                    + [Cell("–") for _ in shown] + [Cell("✓ chosen", "good"), Cell(str(selection.get("rule", "")))])
    window = selection.get("window") or {}
    note = (f"Rule: {selection.get('rule', '?')}. Window: {window.get('note', '–')} "
            f"({fmt(window.get('customers'), 0)} customers). The evaluation cutoff is never used to choose.")
    return Table("clv-selection", "CLV: purchase model selection (training-period validation)",
                 ["model", "status", *shown, "chosen", "reason / fit notes"], rows, note)


def churn_champion_table(churn: Mapping) -> Table:
    """The churn champion and every candidate's validation figures (reports/churn.json `champion`)."""
    champion = churn.get("champion")
    if not isinstance(champion, Mapping):
        return Table("churn-champion", "Churn: champion", ["candidate"], [],
                     "reports/churn.json has no `champion` key: this run did not choose a churn champion.")
    validation = champion.get("validation") or {}
    metrics = ["auc", "log_loss", "ece", "n"]
    for values in validation.values():
        metrics += [m for m in (values or {}) if m not in metrics]
    frame = pd.DataFrame([{"candidate": k, **(v or {})} for k, v in validation.items()],
                         columns=["candidate", *metrics])
    best = best_cells(frame, [m for m in metrics if m != "n"]) if len(frame) else set()
    rows = []
    for i, record in enumerate(frame.to_dict(orient="records")):
        chosen = record["candidate"] == champion.get("name")
        rows.append([Cell(str(record["candidate"]), "name model" if chosen else "name")]
                    + [Cell(fmt(record.get(m), 0 if m == "n" else 4), "num best" if (i, m) in best else "num")
                       for m in metrics] + [Cell("✓ champion" if chosen else "", "good" if chosen else "")])
    margin_text = flat(champion.get("margin_vs_best_baseline") or {})
    return Table("churn-champion", f"Churn: champion {champion.get('name', '?')}", ["candidate", *metrics, "champion"],
                 rows, f"Chosen on {champion.get('selected_on', '?')} (training-period validation; the evaluation "
                       f"cutoff is never used). Margin vs the best baseline: {margin_text or '–'}."
                       + "".join(f" {step}." for step in champion.get("steps") or []))


def flat(value: Any) -> str:
    """A number, or a (nested) mapping of numbers, as one line of text."""
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {flat(v)}" for k, v in value.items())
    return fmt(value)


def spend_note(clv: Mapping) -> str:
    """Why the spend columns are empty, or '' when the data has amounts."""
    spend = clv.get("spend")
    if isinstance(spend, Mapping) and spend.get("available") is False:
        return (f"Spend columns (expected_aov, CLV, its interval and decile) are empty in customer_scores: "
                f"{spend.get('reason') or 'the data has no amounts'}.")
    return ""


def ablation_table(ablation: list[Mapping]) -> Table:
    """Feature-set ablation of the churn model (reports/churn.json `ablation`)."""
    metrics = ["n_features", "roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10"]
    frame = pd.DataFrame(ablation)
    if frame.empty:
        return Table("ablation", "Churn: feature ablation", ["feature set"], [], "No ablation in this run.")
    frame.insert(0, "set", frame["feature_set"].astype(str) + " / prior " + frame.get("prior", "none").astype(str))
    shown = [m for m in metrics if m in frame.columns]
    best = best_cells(frame, [m for m in shown if m != "n_features"])
    rows = [[Cell(str(r["set"]), "name")] + [
        Cell(fmt(r[m], 0 if m == "n_features" else 4), "num best" if (i, m) in best else "num") for m in shown
    ] for i, r in enumerate(frame.to_dict(orient="records"))]
    return Table("ablation", "Churn: feature ablation", ["feature set / prior", *shown], rows,
                 "Same recipe, fewer features: how much the non-RFM features add.")


def ingest_table(ingest: Mapping) -> Table:
    """Rows read, kept and rejected (by reason) per input table (reports/ingest.json)."""
    rows = []
    for name in ("transactions", "events", "customers"):
        info = ingest.get(name)
        if not isinstance(info, Mapping):
            continue
        reasons = {k: v for k, v in (info.get("rejected_by_reason") or {}).items() if v}
        text = ", ".join(f"{k}: {v:,}" for k, v in sorted(reasons.items())) or "none"
        span = f"{info.get('min_ts') or '–'} → {info.get('max_ts') or '–'}"
        rows.append([Cell(name, "name"), Cell(str(info.get("file") or "–")), Cell(fmt(info.get("rows_read"), 0), "num"),
                     Cell(fmt(info.get("rows_kept"), 0), "num"),
                     Cell(fmt(info.get("rows_rejected"), 0), "num bad" if info.get("rows_rejected") else "num"),
                     Cell(text), Cell(fmt(info.get("customers"), 0), "num"), Cell(span)])
    return Table("ingest", "Ingest", ["table", "file", "rows read", "kept", "rejected", "rejected by reason",
                                      "customers", "time span"], rows,
                 f"Source {ingest.get('source', '?')}. Rejected rows are kept in data/interim/rejected/ with "
                 "their reason.")


def segment_table(summary: pd.DataFrame, clv_months: int) -> Table:
    """segment_summary: customers, share, mean churn probability and CLV per RFM segment and risk band."""
    total = summary["customers"].sum() if len(summary) else 0
    ordered = summary.sort_values(["as_of", "rfm_segment", "mean_churn_probability"], kind="stable")
    rows = []
    for r in ordered.to_dict(orient="records"):
        rows.append([
            Cell(str(r["as_of"])[:10], "date"), Cell(str(r["rfm_segment"]), "name"), Cell(str(r["churn_risk_band"])),
            Cell(fmt(int(r["customers"]), 0), "num"), Cell(pct(r["customers"] / total if total else None), "num"),
            Cell(pct(r["mean_churn_probability"]), "num"), Cell(fmt(r["total_clv"], 2), "num"),
            Cell(fmt(r["mean_clv"], 2), "num"),
        ])
    if len(summary):
        customers = int(summary["customers"].sum())
        churn = float((summary["mean_churn_probability"] * summary["customers"]).sum() / customers)
        clv = float(summary["total_clv"].sum()) if summary["total_clv"].notna().any() else None
        rows.append([Cell("all", "name"), Cell("all", "name"), Cell("all"), Cell(fmt(customers, 0), "num"),
                     Cell(pct(customers / total), "num"), Cell(pct(churn), "num"), Cell(fmt(clv, 2), "num"),
                     Cell(fmt(None if clv is None else clv / customers, 2), "num")])
    return Table("segments", "Segment summary", ["as_of", "RFM segment", "churn risk band", "customers", "share",
                                                 "mean churn probability", f"total CLV {clv_months} months",
                                                 f"mean CLV {clv_months} months"], rows,
                 "From outputs/customer_scores: one row per RFM segment and churn risk band (bands from low to high "
                 "risk within a segment); share of all customers scored. The last row is the total the headline shows.")


def heat_style(share: float, scale: float) -> str:
    """Inline background/text colours for a retention share on a 0..scale colour ramp."""
    level = 0.0 if scale <= 0 else max(0.0, min(1.0, share / scale))
    r, g, b = (round(255 + (c - 255) * level) for c in HEAT_RGB)
    text = "#ffffff" if level > 0.55 else "#1f2937"
    return f"background-color: rgb({r}, {g}, {b}); color: {text}"


def cohort_table(cohorts: pd.DataFrame) -> Table:
    """The cohort retention matrix, heat-mapped: month 0 is 100% by definition, the ramp tops at later months."""
    if cohorts.empty:
        return Table("cohorts", "Cohort retention", ["cohort"], [], "No purchases up to as_of.")
    offsets = sorted(int(o) for o in cohorts["month_offset"].unique())
    later = cohorts.loc[cohorts["month_offset"] > 0, "retention"]
    scale = float(later.max()) if len(later) and later.max() > 0 else 1.0
    rows = []
    for month, group in cohorts.groupby("cohort_month", sort=True):
        by_offset = {int(r["month_offset"]): r for r in group.to_dict(orient="records")}
        size = int(group["cohort_customers"].iloc[0])
        row = [Cell(pd.Timestamp(month).strftime("%Y-%m"), "name"), Cell(fmt(size, 0), "num")]
        for k in offsets:
            r = by_offset.get(k)
            if r is None:
                row.append(Cell("", "heat empty"))
                continue
            style = "background-color: #e5e7eb; color: #1f2937" if k == 0 else heat_style(r["retention"], scale)
            row.append(Cell(pct(r["retention"]), "heat", style,
                            f"{r['active_customers']:,} of {size:,} customers bought in month {k}"))
        rows.append(row)
    return Table("cohorts", "Cohort retention", ["cohort", "customers", *[str(k) for k in offsets]], rows,
                 f"Rows: month of the first purchase. Columns: months since that month. Cells: share of the cohort "
                 f"who purchased in that month. Colour ramp from 0% to {pct(scale)} (the highest after month 0).",
                 ["heatmap"])


def render(context: Mapping[str, Any]) -> str:
    """The report page from templates/report.html.j2 (autoescaped: every text is HTML-escaped)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(TEMPLATE).render(**context)
