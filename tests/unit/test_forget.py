"""pipelines.forget: a customer leaves every output file, every warehouse batch and the DVC cache; audit line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import privacy
from pipelines import forget
from tests.privacy_canary import find_canaries

GONE, KEPT = "C0000042", "C0000041"
PARAMS = {"data": {"columns": {"transactions": {"customer_id": "cust"}}}, "scoring": {"sink": None}}
KEY = "forget-test-key-0123456789"


def build_outputs(root: Path) -> None:
    """A tiny run's outputs: interim, rejected, features, CSV/Parquet scores, two warehouse batches, a DVC cache."""
    ids = [GONE, KEPT, GONE]
    pq.write_table(pa.table({"customer_id": ids, "amount": [1.0, 2.0, 3.0]}),
                   _mk(root / "data/interim/transactions.parquet"), compression="zstd")
    pq.write_table(pa.table({"cust": [f" {GONE} ", KEPT], "reason": ["unparseable_ts"] * 2}),  # source name, padded
                   _mk(root / "data/interim/rejected/transactions.parquet"))
    pq.write_table(pa.table({"customer_id": [KEPT, GONE], "churned": [0.0, 1.0]}),
                   _mk(root / "data/features/score.parquet"))
    pq.write_table(pa.table({"customer_id": [KEPT, GONE], "clv": [1.5, 2.5]}),
                   _mk(root / "outputs/customer_scores.parquet"))
    (root / "outputs/customer_scores.csv").write_bytes(
        f'\ufeffcustomer_id,clv,note\r\n{KEPT},1.50,"a, b"\r\n{GONE},2.50,x\r\n'.encode())
    (root / "outputs/action_plan.csv").write_text(f"rank,customer_id,action\n1,{GONE},win_back\n2,{KEPT},perks\n")
    con = duckdb.connect(str(root / "outputs/warehouse.duckdb"))
    con.execute("CREATE TABLE customer_scores (as_of DATE, customer_id VARCHAR, clv DOUBLE, "
                "PRIMARY KEY (as_of, customer_id))")
    con.execute("INSERT INTO customer_scores VALUES ('2024-01-31', ?, 1), ('2024-01-31', ?, 2), ('2024-02-29', ?, 3)",
                [KEPT, GONE, GONE])
    con.execute("CREATE TABLE segment_summary (as_of DATE, segment VARCHAR, customers INTEGER)")
    con.execute("INSERT INTO segment_summary VALUES ('2024-01-31', 'champions', 2)")
    con.execute("CREATE TABLE action_plan AS SELECT * FROM (VALUES (?, 'win_back'), (?, 'perks')) "
                "v(customer_id, action)", [GONE, KEPT])
    con.execute("CREATE VIEW latest AS SELECT * FROM customer_scores")
    con.close()
    (_mk(root / "reports/action_plan.json")).write_text(json.dumps(
        {"planned": 2, "top_at_risk": [{"customer_id": GONE, "clv": 2.5}, {"customer_id": KEPT, "clv": 1.5}]}))
    (_mk(root / "mlartifacts/1/m-1/artifacts/input_example.json")).write_text(json.dumps(
        {"columns": ["customer_id", "frequency"], "data": [[GONE, 1.0], [KEPT, 2.0]]}))
    (root / "reports/index.html").write_text(f"<td>{GONE}</td>")  # rebuilt after the scrub (here: cannot be)
    cache = _mk(root / ".dvc/cache/files/md5/ab/cdef0123")
    shutil.copy(root / "data/interim/transactions.parquet", cache)
    pq.write_table(pa.table({"customer_id": [KEPT]}), _mk(root / ".dvc/cache/files/md5/cd/ef456789"))


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_forget_leaves_no_trace_and_writes_an_audit_line(tmp_path: Path) -> None:
    build_outputs(tmp_path)
    assert find_canaries(tmp_path, [GONE]) != []  # the search sees the customer before
    entry = forget.run([GONE], PARAMS, tmp_path, environ={})
    assert find_canaries(tmp_path, [GONE], produced=[*forget.SEARCHED, ".dvc"]) == []
    assert entry["rows_removed"] == {"data/interim/transactions.parquet": 2,
                                     "data/interim/rejected/transactions.parquet": 1,
                                     "data/features/score.parquet": 1, "outputs/customer_scores.parquet": 1,
                                     "outputs/customer_scores.csv": 1, "outputs/action_plan.csv": 1,
                                     "reports/action_plan.json": 1, "mlartifacts/1/m-1/artifacts/input_example.json": 1}
    assert json.loads((tmp_path / "reports/action_plan.json").read_text()) == {
        "planned": 2, "top_at_risk": [{"customer_id": KEPT, "clv": 1.5}]}
    assert entry["warehouse_rows_removed"] == {"action_plan": 1, "customer_scores": 2}
    assert entry["dvc_cache_objects_deleted"] == 1 and entry["found"]
    assert entry["report_rebuilt"].startswith("failed, page removed:")  # no run to build it from: the page goes
    # everyone else stays, the CSV byte for byte, the warehouse with its key, other tables and views
    csv_bytes = (tmp_path / "outputs/customer_scores.csv").read_bytes()
    assert csv_bytes == f'\ufeffcustomer_id,clv,note\r\n{KEPT},1.50,"a, b"\r\n'.encode()
    kept = pq.read_table(tmp_path / "data/interim/transactions.parquet").to_pydict()
    assert kept == {"customer_id": [KEPT], "amount": [2.0]}
    con = duckdb.connect(str(tmp_path / "outputs/warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT customer_id FROM latest").fetchall() == [(KEPT,)]
    assert con.execute("SELECT count(*) FROM segment_summary").fetchall() == [(1,)]
    ddl = con.execute("SELECT sql FROM duckdb_tables() WHERE table_name = 'customer_scores'").fetchall()[0][0]
    assert "PRIMARY KEY" in ddl
    con.close()
    assert (tmp_path / ".dvc/cache/files/md5/cd/ef456789").exists()
    lines = (tmp_path / forget.AUDIT_LOG).read_text().splitlines()
    audit = json.loads(lines[-1])
    assert audit["customers"] == [forget.audit_hash(GONE, None)] and GONE not in lines[-1]
    again = forget.run([GONE], PARAMS, tmp_path, environ={})  # idempotent; appends a second line
    assert not again["found"] and len((tmp_path / forget.AUDIT_LOG).read_text().splitlines()) == 2


def test_forget_finds_hashed_and_pseudonymised_ids_with_the_key(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    key = KEY.encode()
    hashed = privacy.keyed_hash(GONE, key)
    pseudonym = privacy.keyed_hash(hashed, key)
    pq.write_table(pa.table({"customer_id": [hashed, KEPT]}), _mk(tmp_path / "data/interim/customers.parquet"))
    pd.DataFrame({"customer_id": [pseudonym, KEPT]}).to_csv(_mk(tmp_path / "outputs/customer_scores.csv"), index=False)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/ingest.json").write_text(json.dumps({"privacy": {"customer_id": "hashed"}}))
    with pytest.raises(privacy.DataError, match=privacy.KEY_ENV):
        forget.run([GONE], PARAMS, tmp_path, environ={})
    entry = forget.run([GONE], PARAMS, tmp_path, environ={privacy.KEY_ENV: KEY})
    assert entry["rows_removed"] == {"data/interim/customers.parquet": 1, "outputs/customer_scores.csv": 1}
    assert entry["customers"] == [hashed] and entry["id_hash"] == "hmac-sha256"
    assert forget.main(["--customer-id", "  "], root=tmp_path) == 2
    assert "forget: error:" in capsys.readouterr().err
