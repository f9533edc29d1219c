"""customer_scores.csv as a CRM imports it: exact text, precision, ISO dates, quoting, formula neutralisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.scoring.summary import segment_summary
from pipelines.sinks import FORMULA_STARTS, ScoreSinks
from tests.sink_writer import FIRST_AS_OF, LAYOUT, scores_frame

HEADER = ("customer_id,as_of,horizon_days,clv_months,clv_interval,churn_probability,churn_risk_band,p_purchase,"
          "expected_purchases,expected_aov,clv,clv_low,clv_high,p_no_purchase_clv,clv_decile,rfm_r,rfm_f,rfm_m,"
          "rfm_segment,rfm_segment_code,reason_1,reason_2,reason_3,reason_code_1,reason_code_2,reason_code_3,recommended_action,"
          "recommended_action_code,model_version\n")


def tiny_frame() -> pd.DataFrame:
    """Three customers with hand-picked values: precision, text to quote, a formula, zh labels."""
    frame = scores_frame(3)
    frame["churn_probability"] = [0.1234, 0.5, 0.98765]
    frame["p_purchase"] = [1.0, 0.25, 0.03125]
    frame["expected_purchases"] = [2.5, 0.0, 10.1234]
    frame["expected_aov"] = [12.3, 7.0, 99.999]
    frame["clv"] = [30.75, 0.0, 1234567.891]
    frame["clv_low"] = [10.0, 0.0, -1.25]
    frame["clv_high"] = [50.4, 0.0, 2e6]
    frame["p_no_purchase_clv"] = [0.0, 0.75, 0.96875]
    frame["churn_risk_band"] = ["low", "medium", "高"]
    frame["rfm_segment"] = ["champions", "at_risk", "流失客户"]
    frame["rfm_segment_code"] = ["champions", "at_risk", "lost"]
    frame["reason_1"] = ["=SUM(A1)", 'orders, "recent" ones', "days_since_last_purchase=143 raises risk"]
    frame["reason_2"] = ["", "", "line one\nline two"]
    frame["reason_3"] = ["", "", ""]
    frame["recommended_action"] = ["Retention offer", "专属挽回优惠", "Loyalty perks"]
    return frame


def write_csv(tmp_path, frame: pd.DataFrame) -> bytes:
    """Write a frame through ScoreSinks; the CSV bytes."""
    with ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF) as sinks:
        sinks.write(frame)
        sinks.finish(segment_summary(frame, LAYOUT))
    return (tmp_path / "customer_scores.csv").read_bytes()


def test_exact_csv_text(tmp_path):
    expected = HEADER + (
        "c0000000,2024-01-31,181,12,0.90,0.1234,low,1.0000,2.500,12.30,30.75,10.00,50.40,0.0000,1,1,1,1,champions,champions,"
        """'=SUM(A1),"","",days_since_last_purchase:raises,days_since_last_purchase:raises,"",Retention offer,"""
        '''retention_offer,"churn:3,clv:2"\n'''
        'c0000001,2024-01-31,181,12,0.90,0.5000,medium,0.2500,0.000,7.00,0.00,0.00,0.00,0.7500,2,2,1,1,at_risk,at_risk,'
        '"orders, ""recent"" ones","","",days_since_last_purchase:raises,days_since_last_purchase:raises,"",'
        '专属挽回优惠,retention_offer,"churn:3,clv:2"\n'
        "c0000002,2024-01-31,181,12,0.90,0.9877,高,0.0313,10.123,100.00,1234567.89,-1.25,2000000.00,0.9688,3,3,1,1,"
        '流失客户,lost,days_since_last_purchase=143 raises risk,"line one\nline two","",'
        'days_since_last_purchase:raises,days_since_last_purchase:raises,"",Loyalty perks,retention_offer,'
        '"churn:3,clv:2"\n'
    )
    assert write_csv(tmp_path, tiny_frame()).decode("utf-8") == expected


def test_utf8_without_bom_and_lf_line_ends(tmp_path):
    data = write_csv(tmp_path, tiny_frame())
    assert data.startswith(b"customer_id,as_of,")
    assert "流失客户".encode() in data
    assert b"\r\n" not in data


def test_chunks_append_without_repeating_the_header(tmp_path):
    frame = scores_frame(6)
    with ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF) as sinks:
        sinks.write(frame.iloc[:2])
        sinks.write(frame.iloc[2:])
        sinks.finish(segment_summary(frame, LAYOUT))
    lines = (tmp_path / "customer_scores.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == HEADER.strip()
    assert [line.split(",")[0] for line in lines[1:]] == list(frame["customer_id"])


def test_a_chunk_of_many_batches_keeps_its_row_order(tmp_path):
    """An Arrow chunk of many record batches (as Parquet and Spark hand them over) is rendered in its row order
    (DuckDB's parallel CSV writer reordered 2,048-row vectors)."""
    import pyarrow as pa

    from models.scoring.schema import file_columns
    from pipelines.sinks.crm_csv import formatter, render_csv

    frame = scores_frame(100_000)
    table = pa.Table.from_batches(pa.Table.from_pandas(frame, preserve_index=False).to_batches(max_chunksize=8192))
    columns = file_columns(LAYOUT)
    assert render_csv(formatter(), table, columns, tmp_path / "part.csv") == len(frame)
    ids = pd.read_csv(tmp_path / "part.csv", header=None, names=[c.name for c in columns], usecols=["customer_id"],
                      dtype=str)["customer_id"]
    assert ids.tolist() == frame["customer_id"].tolist()


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_formula_starts_get_a_quote_prefix(tmp_path, start):
    frame = scores_frame(1)
    frame["reason_1"] = f"{start}1+2"
    frame["customer_id"] = f"{start}id"
    table = pd.read_csv(pd.io.common.BytesIO(write_csv(tmp_path, frame)), dtype=str, keep_default_na=False)
    assert table.loc[0, "reason_1"] == f"'{start}1+2"
    assert table.loc[0, "customer_id"] == f"'{start}id"


def test_round_trips_through_a_csv_reader(tmp_path):
    frame = tiny_frame()
    table = pd.read_csv(pd.io.common.BytesIO(write_csv(tmp_path, frame)), dtype=str, keep_default_na=False)
    assert list(table.columns) == [c for c in frame.columns if c != "scored_at"]  # SQL tables only
    assert list(table["reason_1"]) == ["'=SUM(A1)", 'orders, "recent" ones', frame["reason_1"].iloc[2]]
    assert list(table["reason_2"]) == ["", "", "line one\nline two"]
    assert list(table["rfm_segment"]) == list(frame["rfm_segment"])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_number_is_rejected_naming_column_and_customer(tmp_path, bad):
    frame = scores_frame(3)
    frame.loc[1, "clv"] = bad
    with ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF) as sinks, pytest.raises(ValueError, match="clv.*c0000001"):
        sinks.write(frame)
    assert not (tmp_path / "customer_scores.csv").exists()


def test_missing_text_is_rejected_naming_column_and_customer(tmp_path):
    frame = scores_frame(3)
    frame["reason_2"] = frame["reason_2"].astype(object)
    frame.loc[2, "reason_2"] = None
    with ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF) as sinks, pytest.raises(ValueError, match="reason_2.*c0000002"):
        sinks.write(frame)


def test_without_amounts_spend_cells_are_empty_and_the_rest_filled(tmp_path):
    from dataclasses import replace

    layout = replace(LAYOUT, has_spend=False)
    frame = tiny_frame()
    for col in layout.spend_columns():
        frame[col] = pd.array([pd.NA] * len(frame), dtype="Int64") if col in ("clv_decile", "rfm_m") else np.nan
    with ScoreSinks(tmp_path, layout, FIRST_AS_OF) as sinks:
        sinks.write(frame)
        sinks.finish(segment_summary(frame, layout))
    text = (tmp_path / "customer_scores.csv").read_text(encoding="utf-8").splitlines()
    assert text[1].startswith("c0000000,2024-01-31,181,12,0.90,0.1234,low,1.0000,2.500,,,,,0.0000,,1,1,,champions,")
    stored = pd.read_parquet(tmp_path / "customer_scores.parquet")
    assert stored[list(layout.spend_columns())].isna().all().all()
    assert stored["p_no_purchase_clv"].notna().all()
    import duckdb

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        nulls = con.execute("SELECT count(*) FROM customer_scores WHERE clv IS NULL AND clv_low IS NULL AND "
                            "expected_aov IS NULL AND clv_decile IS NULL AND p_purchase IS NOT NULL").fetchone()
    assert nulls == (3,)
