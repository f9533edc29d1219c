"""The report's campaign section: effect table with intervals, uplift table in a fixed order, notes."""

from __future__ import annotations

from pipelines.campaigns_section import campaigns_section

MEASURED = {"campaign": "spring", "status": "measured", "reason": None, "first_sent_at": "2024-03-01T09:00:00+00:00",
            "n_treatment": 800, "n_control": 790, "purchase_rate_treatment": 0.3, "purchase_rate_control": 0.25,
            "purchase_uplift": 0.05, "purchase_uplift_ci": [0.006, 0.094], "save_rate": 0.0667,
            "save_rate_ci": [0.01, 0.12],
            "uplift": {"status": "fitted", "n_test": 480, "models": {
                "churn_risk": {"qini": 0.001, "qini_ci": [-0.01, 0.01], "uplift_at_k": []},
                "two_model_lightgbm": {"qini": 0.012, "qini_ci": [0.002, 0.02],
                                       "uplift_at_k": [{"k_share": 0.1, "uplift": 0.14, "uplift_ci": [0.04, 0.24]}]},
                "difference_in_means": {"qini": -0.003, "qini_ci": [-0.01, 0.008], "uplift_at_k": []}}}}
SMALL = {"campaign": "tiny", "status": "too_small", "reason": "5 customers in the smaller group",
         "first_sent_at": "2024-05-01T09:00:00+00:00", "n_treatment": 5, "n_control": 5,
         "uplift": {"status": "skipped", "reason": "no measured effect (too_small)"}}


def test_section_shows_effects_and_the_uplift_model_first() -> None:
    report = {"has_campaigns": True, "outcome": "any purchase in (sent_at, sent_at + 60 days]; churn = none",
              "ci_method": "newcombe", "ci_level": 0.95, "campaigns": [MEASURED, SMALL]}
    section = campaigns_section(report)
    effects, uplift = section.tables
    assert [c.text for c in effects.rows[0]][6:10] == ["5.00%", "[0.60%, 9.40%]", "6.7%", "[1.0%, 12.0%]"]
    assert effects.rows[1][-1].text == "too_small: 5 customers in the smaller group"
    assert [row[1].text.split(" ")[0] for row in uplift.rows] == ["two-model", "difference", "churn"]
    assert "top 10%: 14.0% [4.0%, 24.0%]" in uplift.rows[0][-1].text
    assert any("tiny" in note for note in section.notes)


def test_section_without_campaign_data_says_so() -> None:
    assert "no campaign exposure" in campaigns_section({"has_campaigns": False}).notes[0]
    assert "campaigns stage" in campaigns_section(None).notes[0]
