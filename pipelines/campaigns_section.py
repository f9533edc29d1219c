"""The report's campaign section from reports/campaigns.json: measured effects, save rates, uplift vs baselines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipelines.report_html import Cell, Table, fmt, pct
from pipelines.report_sections import Section

MODEL_LABELS = {"two_model_lightgbm": "two-model LightGBM (uplift)", "difference_in_means": "difference in means "
                "(everyone alike: random targeting)", "churn_risk": "churn risk (lowest P(purchase) under control)"}
GLOSSARY = [
    ("campaign uplift", "Purchase rate of the treatment group minus that of its control group in the horizon after "
                        "sent_at; churn change is the opposite. The interval is Newcombe's hybrid score interval."),
    ("save rate", "1 - churn rate (treated) / churn rate (control): the share of would-be churners a campaign kept. "
                  "A measured save rate replaces the assumed one of the action that names the campaign."),
    ("Qini", "How much better than random a targeting score finds the customers the campaign moves: the area "
             "between its Qini curve (incremental purchasers per treated customer vs share targeted) and random "
             "targeting; 0 = no better than random. Uplift at k: treated minus control purchase rate in the top k."),
]


def _ci(pair: Any, decimals: int | None = 1) -> str:
    """An interval [low, high] for display: percentages with `decimals`, or plain numbers when None."""
    if not pair or pair[0] is None or pair[1] is None:
        return "–"
    show = (lambda v: fmt(v, 4)) if decimals is None else (lambda v: pct(v, decimals))
    return f"[{show(pair[0])}, {show(pair[1])}]"


def effect_table(campaigns: list[Mapping[str, Any]]) -> Table:
    """One row per campaign: groups, purchase rates, uplift and save rate with intervals, or why none."""
    rows = []
    for c in campaigns:
        measured = c["status"] == "measured"
        rows.append([Cell(str(c["campaign"]), "name"), Cell(str(c["first_sent_at"])[:10]),
                     Cell(fmt(c["n_treatment"], 0), "num"), Cell(fmt(c["n_control"], 0), "num"),
                     Cell(pct(c.get("purchase_rate_treatment")), "num"),
                     Cell(pct(c.get("purchase_rate_control")), "num"),
                     Cell(pct(c.get("purchase_uplift"), 2), "num"), Cell(_ci(c.get("purchase_uplift_ci"), 2), "num"),
                     Cell(pct(c.get("save_rate")), "num"), Cell(_ci(c.get("save_rate_ci")), "num"),
                     Cell("measured" if measured else f"{c['status']}: {c['reason']}")])
    return Table("campaign-effects", "Campaign effect vs control", ["campaign", "sent", "treatment", "control",
                 "purchase rate (T)", "purchase rate (C)", "uplift", "95% CI", "save rate", "95% CI", "status"], rows)


def uplift_table(campaigns: list[Mapping[str, Any]]) -> Table | None:
    """Qini and uplift at each k for the uplift model and its baselines on the same held-out customers."""
    rows = []
    for c in campaigns:
        up = c.get("uplift") or {}
        if up.get("status") != "fitted":
            continue
        for name in sorted(up["models"], key=lambda n: (list(MODEL_LABELS).index(n) if n in MODEL_LABELS else 99, n)):
            m = up["models"][name]
            at_k = "; ".join(f"top {pct(k['k_share'], 0)}: {pct(k['uplift'], 1)} {_ci(k['uplift_ci'])}"
                             for k in m["uplift_at_k"])
            rows.append([Cell(str(c["campaign"]), "name"), Cell(MODEL_LABELS.get(name, name)),
                         Cell(fmt(up["n_test"], 0), "num"), Cell(fmt(m["qini"], 4), "num"),
                         Cell(_ci(m.get("qini_ci"), None), "num"), Cell(at_k)])
    if not rows:
        return None
    return Table("campaign-uplift", "Who to target: uplift model vs baselines (held-out customers)",
                 ["campaign", "targeting score", "held-out rows", "Qini", "95% CI (bootstrap)", "uplift at k"], rows,
                 "Features as of the day before the send; customers held out as a whole. Qini 0 = random targeting.")


def campaigns_section(report: Mapping[str, Any] | None) -> Section:
    """The campaign section: effect table, uplift table, or a note why there is nothing to show."""
    section = Section("campaigns-section", "Did the campaigns work?")
    if report is None:
        section.notes.append("No campaign report in this run (reports/campaigns.json is written by the campaigns "
                             "stage).")
        return section
    if not report.get("has_campaigns"):
        section.notes.append("The data carries no campaign exposure (data.campaigns: customer, campaign, sent_at, "
                             "treatment or control), so no campaign effect is measured; the action plan uses the "
                             "assumed save rates.")
        return section
    section.notes.append(f"Outcome: {report['outcome']}. Each campaign's treatment group against its own control "
                         f"group; {report['ci_method']} {pct(report['ci_level'], 0)} intervals.")
    section.tables.append(effect_table(report["campaigns"]))
    uplift = uplift_table(report["campaigns"])
    if uplift is not None:
        section.tables.append(uplift)
    skipped = [f"{c['campaign']}: {c['uplift']['reason']}" for c in report["campaigns"]
               if (c.get("uplift") or {}).get("status") == "skipped"]
    if skipped:
        section.notes.append("No uplift model for " + "; ".join(skipped) + ".")
    return section
