"""pipelines.action_plan on a tiny scored batch: CSV, warehouse table, JSON; labels in any locale; no amounts."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipelines import action_plan
from tests.conftest import compose_params


@pytest.fixture(scope="module")
def base() -> dict:
    """The shipped params (composed once)."""
    return compose_params([])


def with_(params: dict, locale: str = "en", budget: float | None = None) -> dict:
    """A copy with another locale and budget."""
    out = copy.deepcopy(params)
    out["features"]["segment_locale"], out["scoring"]["budget"] = locale, budget
    return out


def batch(root: Path, clv: list[float | None], locale: str = "en") -> None:
    """A scored batch (customer_scores.parquet, labels in the locale) and its score features."""
    band = {"en": ["high", "low", "medium", "high"], "zh": ["高", "低", "中", "高"]}[locale]
    segment = {"en": ["Champions", "Champions", "Lost", "Lost"], "zh": ["重要价值客户", "重要价值客户", "一般挽留客户",
                                                                        "一般挽留客户"]}[locale]
    (root / "outputs").mkdir(parents=True)
    (root / "data" / "features").mkdir(parents=True)
    pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "as_of": [pd.Timestamp("1998-06-30").date()] * 4,
                  "churn_probability": [0.9, 0.2, 0.7, 0.95], "clv": pd.array(clv, dtype="Float64"),
                  "clv_decile": pd.array([10, 10, 7, 1] if clv[0] is not None else [None] * 4, dtype="Int64"),
                  "churn_risk_band": band, "rfm_segment": segment}).to_parquet(root / "outputs" /
                                                                               "customer_scores.parquet")
    pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "orders_total": [9, 12, 2, 1],
                  "tenure_days": [500, 700, 300, 400]}).to_parquet(root / "data" / "features" / "score.parquet")


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_plan_files_and_table_with_stable_action_names(tmp_path: Path, base: dict, locale: str) -> None:
    batch(tmp_path, [300.0, 400.0, 30.0, 3.0], locale)
    params = with_(base, locale, 12.0)
    report = action_plan.run(params, tmp_path)
    plan = pd.read_csv(tmp_path / "outputs" / "action_plan.csv", dtype={"customer_id": str})
    # by value per cost: a retention (38.5 for 2), b perks (7 for 1), a upgrade to winback (+32.5 for +8), then
    # c retention (1.15 for 2) no longer fits in 12
    assert plan["customer_id"].tolist() == ["a", "b"] and plan["action"].tolist() == ["personal_winback",
                                                                                     "loyalty_perks"]
    assert plan["rank"].tolist() == [1, 2] and plan["cost"].sum() <= 12
    assert plan["action_label"].iloc[0] == {"en": "Personal win-back offer", "zh": "专属挽回优惠"}[locale]
    assert report["rows"] == 2 and report["spent"] == pytest.approx(11.0)
    with duckdb.connect(str(tmp_path / "outputs" / "warehouse.duckdb"), read_only=True) as con:
        stored = con.execute("SELECT customer_id, action, expected_value, horizon_days FROM action_plan "
                             "ORDER BY rank").fetchall()
    assert [r[:2] for r in stored] == [("a", "personal_winback"), ("b", "loyalty_perks")]
    assert stored[0][2] == pytest.approx(0.9 * 300 * 0.3 - 10, abs=0.01)
    summary = json.loads((tmp_path / "reports" / "action_plan.json").read_text(encoding="utf-8"))
    assert summary["high_risk_top_decile"] == {"customers": 1, "with_saving_action": 1, "without": 0}
    assert summary["revenue_at_risk_total"] == pytest.approx(0.9 * 300 + 0.2 * 400 + 0.7 * 30 + 0.95 * 3)
    again = action_plan.run(params, tmp_path)  # re-running replaces the batch, never duplicates it
    with duckdb.connect(str(tmp_path / "outputs" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM action_plan").fetchone()[0] == again["rows"] == 2


def test_without_amounts_there_is_no_plan_and_the_report_says_why(tmp_path: Path, base: dict) -> None:
    batch(tmp_path, [None] * 4)
    report = action_plan.run(base, tmp_path)
    assert report["rows"] == 0
    summary = json.loads((tmp_path / "reports" / "action_plan.json").read_text(encoding="utf-8"))
    assert summary["available"] is False and "no amounts" in summary["note"]
    assert pd.read_csv(tmp_path / "outputs" / "action_plan.csv").empty


def test_an_unknown_band_label_is_named(tmp_path: Path, base: dict) -> None:
    batch(tmp_path, [300.0, 400.0, 30.0, 3.0])
    path = tmp_path / "outputs" / "customer_scores.parquet"
    pd.read_parquet(path).assign(churn_risk_band=np.array(["severe", "low", "low", "low"])).to_parquet(path)
    with pytest.raises(ValueError, match="churn_risk_band.*severe"):
        action_plan.run(base, tmp_path)


def test_a_measured_campaign_replaces_the_assumed_save_rate(tmp_path: Path, base: dict) -> None:
    batch(tmp_path, [300.0, 400.0, 30.0, 3.0])
    params = with_(base, budget=None)
    params["scoring"]["actions"][0]["campaign"] = "winback_q2"  # personal_winback
    (tmp_path / "reports").mkdir()
    measured = {"campaign": "winback_q2", "status": "measured", "save_rate": 0.05, "save_rate_ci": [0.01, 0.09],
                "purchase_uplift": 0.02, "purchase_uplift_ci": [0.0, 0.04], "churn_rate_control": 0.8,
                "n_treatment": 500, "n_control": 500}
    (tmp_path / "reports" / "campaigns.json").write_text(json.dumps({"horizon_days": 181, "campaigns": [measured]}))
    action_plan.run(params, tmp_path)
    plan = pd.read_csv(tmp_path / "outputs" / "action_plan.csv", dtype={"customer_id": str})
    # measured 0.05: winback for a is worth 0.9*300*0.05-10 = 3.5 < retention 38.5
    assert plan.set_index("customer_id").loc["a", "action"] == "retention_offer"
    summary = json.loads((tmp_path / "reports" / "action_plan.json").read_text(encoding="utf-8"))
    assert summary["save_rate_source"]["personal_winback"] == "measured: winback_q2"
    assert summary["save_rate_source"]["retention_offer"] == "assumed"


def test_pseudonymised_scores_still_meet_their_feature_rows(tmp_path: Path, base: dict,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from features import privacy

    monkeypatch.setenv("CHURN_CLV_PII_KEY", "test-key-of-32-characters-000000")
    params = with_(base, budget=None)
    params["scoring"]["pseudonymise_ids"] = True
    batch(tmp_path, [300.0, 400.0, 30.0, 3.0])
    path = tmp_path / "outputs" / "customer_scores.parquet"
    privacy.pseudonymise(pd.read_parquet(path), params).to_parquet(path)  # as the score stage writes them
    features = tmp_path / "data" / "features" / "score.parquet"
    pd.read_parquet(features).assign(orders_total=1, tenure_days=10).to_parquet(features)  # all onboarding-eligible
    action_plan.run(params, tmp_path)
    plan = pd.read_csv(tmp_path / "outputs" / "action_plan.csv", dtype={"customer_id": str})
    assert not set(plan["customer_id"]) & {"a", "b", "c", "d"} and len(plan) > 0
    assert "onboarding" in set(plan["action"])  # the feature columns were joined on the pseudonymised ids


def test_the_sql_sink_gets_the_plan_too(tmp_path: Path, base: dict) -> None:
    import sqlite3

    batch(tmp_path, [300.0, 400.0, 30.0, 3.0])
    params = with_(base, budget=12.0)
    params["scoring"]["sink"] = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    action_plan.run(params, tmp_path)
    action_plan.run(params, tmp_path)  # the batch is replaced, not appended
    with sqlite3.connect(tmp_path / "crm.sqlite") as con:
        rows = con.execute("SELECT customer_id, action, rank FROM action_plan ORDER BY rank").fetchall()
    assert rows == [("a", "personal_winback", 1), ("b", "loyalty_perks", 2)]


def test_score_features_written_by_spark_as_a_folder_of_parts(tmp_path: Path, base: dict) -> None:
    batch(tmp_path, [300.0, 400.0, 30.0, 3.0])
    single = tmp_path / "data" / "features" / "score.parquet"
    frame = pd.read_parquet(single)
    single.unlink()
    single.mkdir()  # engine=spark: data/features/score.parquet is a folder of part files (+ _SUCCESS)
    frame.iloc[:2].to_parquet(single / "part-00000.parquet")
    frame.iloc[2:].to_parquet(single / "part-00001.parquet")
    (single / "_SUCCESS").write_bytes(b"")
    plan = action_plan.build(with_(base, budget=12.0), tmp_path)[0]
    assert plan["customer_id"].tolist() == ["a", "b"]


def test_slugs_look_each_label_up_once_and_name_the_first_unknown_value() -> None:
    names = {"High risk": "high", "高": "high", "Low": "low"}
    values = pd.Series(["高", "low", "High risk", "high", "Low"], dtype="str")
    out = action_plan.slugs(values, names, "band")
    assert out.tolist() == ["high", "low", "high", "high", "low"] and out.dtype == values.dtype
    with pytest.raises(ValueError, match="band: unknown value 'severe'"):
        action_plan.slugs(pd.Series(["low", "severe", "odd"], dtype="str"), names, "band")
    with pytest.raises(ValueError, match="band: unknown value nan"):
        action_plan.slugs(pd.Series(["low", None], dtype="str"), names, "band")


def test_feature_columns_are_attached_by_position_or_else_by_customer_id() -> None:
    frame = pd.DataFrame({"customer_id": pd.Series(["a", "b", "c"], dtype="str"), "clv": [1.0, 2.0, 3.0]})
    extra = pd.DataFrame({"customer_id": pd.Series(["a", "b", "c"], dtype="str"),
                          "orders_total": pd.array([9, None, 2], dtype="Int64")})
    same = action_plan.attach(frame, extra)
    pd.testing.assert_frame_equal(same, frame.merge(extra, on="customer_id", how="left"))
    shuffled = action_plan.attach(frame, extra.iloc[[2, 0, 1]].reset_index(drop=True))
    assert shuffled["orders_total"].tolist() == [9, pd.NA, 2]
    missing = action_plan.attach(frame, extra.iloc[[0, 2]])
    assert missing["orders_total"].isna().tolist() == [False, True, False]


def test_decision_chunks_join_features_in_another_order_by_customer_id(tmp_path: Path, base: dict) -> None:
    """Chunks of 2 rows whose features sit in other chunks (a, c | b, d): the whole feature table is joined on
    customer_id (a join within each chunk would miss b and c); a customer without a CLV is left out."""
    batch(tmp_path, [300.0, 400.0, 30.0, None])
    features = tmp_path / "data" / "features" / "score.parquet"
    pd.read_parquet(features).iloc[[0, 2, 1, 3]].to_parquet(features)
    cfg = action_plan.ScoringConfig.from_params(base["scoring"])
    chunks = list(action_plan.decision_chunks(tmp_path / "outputs" / "customer_scores.parquet", features, cfg, rows=2))
    assert [c["customer_id"].tolist() for c in chunks] == [["a", "b"], ["c"]]
    joined = pd.concat(chunks)
    assert joined["orders_total"].tolist() == [9, 12, 2] and joined["tenure_days"].tolist() == [500, 700, 300]
