"""The report's decision sections: funnel, segment migration, churn/CLV per segment, action plan, glossary.

Each builder reads one input (a warehouse table of this batch, customer_scores.parquet or a JSON report) and
returns a Section: tables and figures, or a note saying why the section is empty. Rendered by report.html.j2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from models.scoring.migration import GONE, NEW, migration_matrix
from pipelines.report_html import Cell, Figure, Table, fmt, pct
from pipelines.report_plots import data_uri, distribution_figure, funnel_figure, matrix_figure, png_bytes

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
GLOSSARY = [
    ("churn_probability", "Calibrated probability that a customer makes no purchase in the churn horizon "
                          "(horizon_days after as_of). Not an account closure."),
    ("risk band", "churn_probability cut at the thresholds in scoring.risk_bands (e.g. low < 0.5 <= medium < 0.8 "
                  "<= high). A band is a bucket of probability, not a separate model."),
    ("p_purchase / p_alive", "p_purchase: the BTYD model's probability of at least one purchase in the horizon "
                             "(the counterpart of 1 - churn_probability from another model). p_alive (BTYD) is the "
                             "probability the customer has not silently dropped out; it is 1 for every one-time "
                             "buyer under BG/NBD, which is why the scores show p_purchase instead."),
    ("CLV", "Expected discounted spend over the CLV horizon (clv_months) from the purchase and spend models; "
            "clv_low / clv_high bound this expected value (parameter uncertainty), not one customer's spend."),
    ("ROC AUC / Gini", "Chance that a random churner is ranked above a random non-churner (0.5 = random). "
                       "Gini = 2 x AUC - 1; for CLV, the normalised Gini of the ranking by predicted value."),
    ("log loss / Brier", "Mean penalty of the predicted probabilities against what happened; lower is better."),
    ("ECE", "Expected calibration error: the mean gap, weighted by customers, between predicted churn and "
            "observed churn in bins of prediction. 0.02 means predictions are off by 2 points on average."),
    ("lift", "Churn rate among the top x% ranked by the model divided by the overall churn rate "
             "(lift 2 at 10%: targeting that tenth finds twice the churners of a random tenth)."),
    ("RFM segment", "Recency, frequency, monetary scores 1-5 at as_of, each high (>= features.rfm_high_score) or "
                    "low: 8 segments with stable slugs (champions, lost, ...)."),
    ("funnel step conversion", "Share of the previous step's customers who reached this step within the "
                               "conversion window after their entry; overall conversion is the share of entrants."),
    ("evaluation cutoff (c_e)", "as_of minus the horizon: the backtest date where models are measured on "
                                "outcomes they never saw. Headline values marked 'as_of' come from today's scores."),
]


@dataclass(frozen=True)
class Section:
    """One report section: anchor id, heading, notes, tables and figures."""

    id: str
    title: str
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


def figure(name: str, caption: str, fig: Any) -> Figure:
    """A matplotlib figure embedded as a data: URI."""
    return Figure(name, caption, data_uri(png_bytes(fig)))


def warehouse_table(warehouse: Path, table: str, key: Mapping[str, Any]) -> pd.DataFrame | None:
    """This batch's rows of a warehouse table; None when the file or the table does not exist."""
    if not warehouse.exists():
        return None
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        columns = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                             "WHERE table_name = ?", [table]).fetchall()}
        if not columns:
            return None
        keys = [k for k in key if k in columns]
        where = " AND ".join(f"{k} = ?" for k in keys) or "TRUE"
        return con.execute(f"SELECT * FROM {table} WHERE {where}", [key[k] for k in keys]).df()
    finally:
        con.close()


def day(value: Any) -> str:
    """A date (or timestamp) as YYYY-MM-DD."""
    return str(pd.Timestamp(value).date())


def hours(value: Any) -> str:
    """Hours for display: minutes below one hour, days above 48 hours."""
    if value is None or pd.isna(value):
        return "–"
    value = float(value)
    if value < 1:
        return f"{60 * value:.0f} min"
    return f"{value:.1f} h" if value < 48 else f"{value / 24:.1f} d"


def funnel_section(table: pd.DataFrame | None, has_events: bool) -> Section:
    """Step table, breakdown by channel and segment, funnel chart; or why there is none."""
    section = Section("funnel-section", "Conversion funnel")
    if table is None:
        section.notes.append("The warehouse has no `funnel` table for this batch: the score stage that wrote it "
                             "predates the funnel.")
        return section
    if table.empty:
        section.notes.append("The data has no events (data.events), so there is no funnel." if not has_events else
                             "No customer entered the funnel in its entry period (no first-step event).")
        return section
    first = table.iloc[0]
    steps = table[table["dimension"] == "all"].sort_values("step_index")
    section.notes.append(
        f"Customers whose first {steps['step'].iloc[0]} fell between {day(first['entry_from'])} and "
        f"{day(first['entry_to'])}"
        f" (entry period), followed for {fmt(float(first['window_days']), 1)} days: a later step counts only when "
        "it happens after the previous one and within that window (a hard filter). 'purchase' is a transaction.")
    rows = [[Cell(str(r["step"]), "name"), Cell(fmt(int(r["customers"]), 0), "num"),
             Cell(pct(r["step_conversion"]), "num"), Cell(pct(r["overall_conversion"]), "num"),
             Cell(fmt(int(r["drop_off"]), 0), "num"), Cell(hours(r["median_hours_from_entry"]), "num"),
             Cell(hours(r["mean_hours_from_entry"]), "num")] for _, r in steps.iterrows()]
    section.tables.append(Table("funnel", "Funnel steps", ["step", "customers", "step conversion",
                                                           "overall conversion", "drop-off", "median time from entry",
                                                           "mean time from entry"], rows,
                                "Drop-off: customers of the previous step who did not reach this one in the window."))
    section.tables.append(breakdown_table(table, [str(s) for s in steps["step"]]))
    section.figures.append(figure("funnel", "Funnel: customers per step and conversion by entry channel",
                                  funnel_figure(table)))
    return section


def breakdown_table(table: pd.DataFrame, steps: list[str]) -> Table:
    """One row per channel and per RFM segment: entrants and overall conversion to each later step."""
    rows = []
    for dimension in ("channel", "rfm_segment"):
        part = table[table["dimension"] == dimension]
        for value, group in part.groupby("dimension_value", sort=True):
            group = group.sort_values("step_index")
            last = group.iloc[-1]
            rows.append([Cell(dimension.replace("_", " ")), Cell(str(value), "name"),
                         Cell(fmt(int(group["customers"].iloc[0]), 0), "num")]
                        + [Cell(pct(v), "num") for v in group["overall_conversion"].iloc[1:]]
                        + [Cell(hours(last["median_hours_from_entry"]), "num")])
    return Table("funnel-breakdown", "Funnel by entry channel and RFM segment",
                 ["breakdown", "group", "entrants", *[f"→ {s}" for s in steps[1:]], f"median time to {steps[-1]}"],
                 rows, "Overall conversion from the entry to each step. RFM segment at as_of; 'no_purchase': "
                       "customers with events but no purchase up to as_of.")


def migration_section(table: pd.DataFrame | None) -> Section:
    """From -> to matrices of customers and revenue between the previous batch and this one."""
    section = Section("migration-section", "Segment migration")
    if table is None or table.empty:
        section.notes.append("No earlier batch in the warehouse with the same horizons: migration compares this "
                             "as_of with the previous scored as_of (score an earlier windows.as_of first).")
        return section
    previous = table["previous_as_of"].iloc[0]
    previous = day(previous)
    section.notes.append(f"RFM segment of each customer at the previous as_of {previous} (rows) and now "
                         "(columns). 'new': first scored now; 'gone': scored then, not now. Revenue: net amount "
                         "spent between the two dates by the customers of a cell.")
    counts = migration_matrix(table, "customers")
    stay = sum(int(counts.loc[s, s]) for s in counts.index if s in counts.columns)
    section.notes.append(f"{fmt(stay, 0)} of {fmt(int(counts.to_numpy().sum()), 0)} customers kept their segment.")
    rows = [[Cell(str(name), "name")] + [Cell(fmt(int(v), 0), "num best" if name == col else "num")
                                         for col, v in row.items()] + [Cell(fmt(int(row.sum()), 0), "num")]
            for name, row in counts.iterrows()]
    section.tables.append(Table("migration", f"Customers from segment at {previous} → segment now",
                                ["from \\ to", *[str(c) for c in counts.columns], "total"], rows,
                                "Bold: customers who stayed in their segment."))
    section.tables.append(flow_table(table, [str(c) for c in counts.index if c != NEW], previous))
    section.figures.append(figure("migration-customers", "Segment migration: customers",
                                  matrix_figure(counts, "Customers by segment move", "customers")))
    if table["revenue"].notna().any():
        revenue = migration_matrix(table, "revenue")
        section.figures.append(figure("migration-revenue", f"Segment migration: revenue since {previous}",
                                      matrix_figure(revenue, "Revenue by segment move", "net revenue")))
    return section


def flow_table(table: pd.DataFrame, segments: list[str], previous: str) -> Table:
    """Per segment: customers then and now, net change, share who stayed, CLV now."""
    moves = table.assign(customers=table["customers"].astype("int64"))
    before = moves[moves["from_segment"] != NEW].groupby("from_segment")["customers"].sum()
    now = moves[moves["to_segment"] != GONE].groupby("to_segment")["customers"].sum()
    stayed = moves[moves["from_segment"] == moves["to_segment"]].groupby("from_segment")["customers"].sum()
    clv = moves[moves["to_segment"] != GONE].groupby("to_segment")["clv"].sum(min_count=1)
    rows = []
    for name in segments:
        was, has = int(before.get(name, 0)), int(now.get(name, 0))
        rows.append([Cell(name, "name"), Cell(fmt(was, 0), "num"), Cell(fmt(has, 0), "num"),
                     Cell(f"{has - was:+,}", "num good" if has > was else "num bad" if has < was else "num"),
                     Cell(pct(stayed.get(name, 0) / was if was else None), "num"), Cell(fmt(clv.get(name), 2), "num")])
    return Table("migration-flow", f"Segment sizes at {previous} and now", ["segment", f"customers {previous}",
                 "customers now", "net change", "stayed", "CLV now"], rows,
                 "Stayed: share of the segment's earlier customers still in it. CLV now: sum over its customers today.")


def distribution_stats(scores: Path, clv_column: str) -> pd.DataFrame:
    """Per RFM segment of customer_scores.parquet: customers, mean and quantiles of churn and CLV (DuckDB)."""
    parts = []
    for value, column in (("churn", "churn_probability"), ("clv", clv_column)):
        parts.append(f"avg({column}) AS {value}_mean, sum({column}) AS {value}_total")
        parts += [f"quantile_cont({column}, {q}) AS {value}_p{round(100 * q)}" for q in QUANTILES]
    query = (f"SELECT rfm_segment AS segment, count(*) AS customers, {', '.join(parts)} "
             "FROM read_parquet(?) GROUP BY rfm_segment ORDER BY churn_p50 DESC, segment")
    with duckdb.connect() as con:
        return con.execute(query, [str(scores)]).df()


def distribution_section(scores: Path, clv_column: str) -> Section:
    """Churn probability and CLV distributions per segment: table and box plots."""
    stats = distribution_stats(scores, clv_column)
    section = Section("distribution-section", "Churn and CLV by segment")
    section.notes.append("Boxes: 25th to 75th percentile, line: median, diamond: mean, whiskers: 10th and 90th "
                         "percentiles of the customers scored at as_of.")
    rows = [[Cell(str(r["segment"]), "name"), Cell(fmt(int(r["customers"]), 0), "num"),
             Cell(pct(r["churn_p25"]), "num"), Cell(pct(r["churn_p50"]), "num"), Cell(pct(r["churn_p75"]), "num"),
             Cell(pct(r["churn_mean"]), "num"), Cell(fmt(r["clv_p25"], 2), "num"), Cell(fmt(r["clv_p50"], 2), "num"),
             Cell(fmt(r["clv_p75"], 2), "num"), Cell(fmt(r["clv_mean"], 2), "num"), Cell(fmt(r["clv_total"], 0), "num")]
            for _, r in stats.iterrows()]
    section.tables.append(Table("distribution", "Churn probability and CLV per RFM segment",
                                ["segment", "customers", "churn p25", "churn median", "churn p75", "mean churn",
                                 "CLV p25", "CLV median", "CLV p75", "mean CLV", "total CLV"], rows,
                                "Segments ordered by median churn probability, riskiest first."))
    section.figures.append(figure("churn-by-segment", "Churn probability by RFM segment",
                                  distribution_figure(stats, "churn", "Churn probability by segment",
                                                      "churn_probability")))
    if stats["clv_p50"].notna().any():
        section.figures.append(figure("clv-by-segment", "CLV by RFM segment",
                                      distribution_figure(stats, "clv", "CLV by segment", "CLV (currency)")))
    return section


def action_plan_section(plan: Mapping[str, Any] | None) -> Section:
    """Per-action counts, cost and expected value, and the top at-risk valuable customers (reports/action_plan.json)."""
    section = Section("plan-section", "Action plan")
    if plan is None:
        section.notes.append("No action plan in this run (reports/action_plan.json is written by the score stage).")
        return section
    if plan.get("available") is False:
        section.notes.append(f"No action plan: {plan.get('note', 'not available')}.")
        return section
    budget, must = plan.get("budget"), plan.get("high_risk_top_decile") or {}
    section.notes.append(f"Budget {'unlimited' if budget is None else fmt(budget, 2)}; planned cost "
                         f"{fmt(plan.get('spent'), 2)} for {fmt(plan.get('planned'), 0)} customers; expected value "
                         f"{fmt(plan.get('expected_value'), 2)} (upper bound {fmt(plan.get('upper_bound'), 2)}); "
                         f"revenue at risk {fmt(plan.get('revenue_at_risk_total'), 2)}. Expected value of an action = "
                         "P(churn) x CLV x save rate - cost; at most one action per customer.")
    section.notes.append(f"High churn risk in the top CLV decile: {fmt(must.get('customers'), 0)} customers, "
                         f"{fmt(must.get('without'), 0)} without a retention action.")
    rows = [[Cell(str(a.get("label") or a.get("action")), "name"), Cell(fmt(a.get("customers"), 0), "num"),
             Cell(fmt(a.get("cost"), 2), "num"), Cell(fmt(a.get("expected_saved_revenue"), 2), "num"),
             Cell(fmt(a.get("expected_value"), 2), "num"), Cell(fmt(a.get("expected_value_per_customer"), 2), "num"),
             Cell(fmt(a.get("revenue_at_risk"), 2), "num")]
            for a in plan.get("per_action") or []]
    section.tables.append(Table("plan-actions", "Actions", ["action", "customers", "cost", "expected saved revenue",
                                                             "expected value", "per customer", "revenue at risk"],
                                rows))
    top = [[Cell(str(c.get("customer_id")), "name"), Cell(pct(c.get("churn_probability")), "num"),
            Cell(fmt(c.get("clv"), 2), "num"), Cell(fmt(c.get("value_at_risk"), 2), "num"),
            Cell(str(c.get("action", ""))), Cell(fmt(c.get("expected_value"), 2), "num")]
           for c in plan.get("top_at_risk") or []]
    section.tables.append(Table("plan-top", "Top at-risk valuable customers", ["customer", "churn probability",
                                                                                "CLV", "value at risk", "action",
                                                                                "expected value"], top,
                                "Value at risk = churn probability x CLV."))
    return section
