"""Ingest of the optional campaigns table: canonical schema, one reason per unusable row, absent = empty."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines import ingest, paths
from tests.conftest import compose_params

CAMPAIGNS = """cust,name,sent,arm
a,spring,2024-03-01 09:00,treatment
b,spring,2024-03-01 09:00, Control
c,,2024-03-01 09:00,treatment
d,spring,not a date,control
e,spring,2024-03-01 09:00,holdout
f,spring,2024-03-01 09:00,
a,spring,2024-03-02 09:00,control
g,spring,2024-07-01 09:00,treatment
"""


def test_campaign_file_is_validated_with_reasons(tmp_path: Path) -> None:
    (tmp_path / "tx.csv").write_text("customer_id,ts,amount\na,2024-01-05,10\nb,2024-02-01,5\n", encoding="utf-8")
    (tmp_path / "campaigns.csv").write_text(CAMPAIGNS, encoding="utf-8")
    params = compose_params(["data=files", "data.transactions=tx.csv", "data.campaigns=campaigns.csv",
                             "data.max_reject_share=null", "windows.as_of=2024-06-30",
                             "data.columns.campaigns.customer_id=cust", "data.columns.campaigns.campaign=name",
                             "data.columns.campaigns.sent_at=sent", "data.columns.campaigns.group=arm"])
    stats = ingest.run(params, tmp_path)["campaigns"]
    kept = pd.read_parquet(paths.rebase(paths.CAMPAIGNS, tmp_path))
    rejected = pd.read_parquet(paths.rebase(paths.REJECTED_FILES["campaigns"], tmp_path))
    assert kept[["customer_id", "group"]].values.tolist() == [["a", "treatment"], ["b", "control"]]
    assert str(kept["sent_at"].dtype) == "datetime64[us, UTC]"
    assert dict(zip(rejected["cust"], rejected["reason"], strict=True)) == {
        "c": "null_campaign", "d": "unparseable_sent_at", "e": "unknown_group", "f": "null_group",
        "a": "duplicate_row", "g": "after_as_of"}
    assert (stats["rows_read"], stats["rows_kept"], stats["rejected_by_reason"]["unknown_group"]) == (8, 2, 1)


def test_source_without_campaigns_writes_an_empty_table(tmp_path: Path) -> None:
    (tmp_path / "tx.csv").write_text("customer_id,ts,amount\na,2024-01-05,10\n", encoding="utf-8")
    doc = ingest.run(compose_params(["data=files", "data.transactions=tx.csv"]), tmp_path)
    assert doc["campaigns"]["file"] is None
    assert pd.read_parquet(paths.rebase(paths.CAMPAIGNS, tmp_path)).empty
