"""Privacy by design (features/privacy.py): PII detection, keyed hashing, ingest without PII, consent, pseudonyms."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import privacy
from features.errors import DataError
from pipelines import ingest
from tests.conftest import compose_params
from tests.privacy_canary import find_canaries

KEY = "k" * 8 + "-test-key-0123"
ENV = {privacy.KEY_ENV: KEY}
CANARIES = ("canary", "+44 20 7946", "Ann Canary")


@pytest.mark.parametrize(("name", "kind"), [
    ("email", "email"), ("E-Mail", "email"), ("customerEmailAddress", "email"), ("mobile_phone", "phone"),
    ("Telephone", "phone"), ("full_name", "name"), ("FirstName", "name"), ("surname", "name"),
    ("street_address", "address"), ("zip_code", "address"), ("postcode", "address"), ("ssn", "id_number"),
    ("passport_number", "id_number"), ("iban", "id_number"), ("date_of_birth", "birth_date"),
    ("ip_address", "ip_address"),
    ("region", None), ("campaign_name", None), ("product_name", None), ("channel", None), ("order_id", None),
    ("customer_id", None), ("signup_ts", None), ("telemetry", None), ("zipped", None), ("nickname_count", None),
])
def test_column_names_announce_personal_data(name: str, kind: str | None) -> None:
    assert privacy.kind_by_name(name) == kind


@pytest.mark.parametrize(("values", "kind"), [
    (["ann@example.com", "bob.b@mail.example.org", None, ""], "email"),
    (["call me at ann@example.com", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"], "email"),
    (["+44 20 7946 0001", "(020) 7946-0002", "+1-555-0100-003", "020 7946 0004"], "phone"),
    (["2023-000123", "2023-000124", "O-2023-1"], None),  # order numbers are not phone numbers
    (["Ann Smith", "Bob de Vries", "Cy O'Neil", "Dee Jones"], "name"),
    (["12 Canary Lane", "3b High Street", "7, Rue de la Paix"], "address"),
    (["078-05-1120", "219-09-9999"], "id_number"),
    (["4111 1111 1111 1111", "5500-0000-0000-0004"], "id_number"),
    (["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"], "id_number"),
    (["North East", "South West", "Central"] * 3, None),  # few distinct
    (["2024-01-05", "05/01/2024", "2024-02-01"], None),  # dates are not phone numbers
    (["19.99", "1234567.5", "C0000001", "O-000123", "1997"], None),
    (["4111111111111112", "1234567890123"], None),  # card-length ids failing Luhn
    ([], None), ([None, ""], None),
])
def test_values_reveal_personal_data(values: list, kind: str | None) -> None:
    assert privacy.kind_by_content(values) == kind


def test_classify_lists_names_and_content_and_can_be_told_not_to_detect() -> None:
    samples = {"Email": None, "contact": ["Ann Smith", "Bob Jones"], "loyalty_code": ["A1", "B2"], "region": ["n"]}
    assert privacy.classify(samples, listed=["Loyalty Code"]) == {
        "Email": "name: email", "contact": "content: name", "loyalty_code": "listed"}
    assert privacy.classify(samples, listed=["loyalty_code"], detect=False) == {"loyalty_code": "listed"}


def test_keyed_hash_is_hmac_sha256_and_the_sql_form_agrees() -> None:
    # RFC 4231 test case 2
    assert privacy.keyed_hash("what do ya want for nothing?", b"Jefe") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    long_key = b"x" * 100  # keys longer than the block are hashed first, as HMAC says
    values = ["ann@example.com", " padded ", "Zoë", None]
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1, ?), (2, ?), (3, ?), (4, ?)) v(i, x)", values)
    for key in (KEY.encode(), long_key):
        got = [row[0] for row in con.execute(f"SELECT {privacy.hash_sql('x', key)} FROM t ORDER BY i").fetchall()]
        want = [hmac.new(key, v.strip().encode(), hashlib.sha256).hexdigest() if v is not None else None
                for v in values]
        assert got == want == [privacy.keyed_hash(v, key) if v is not None else None for v in values]


def test_the_key_comes_only_from_the_environment_with_a_one_line_error() -> None:
    assert privacy.pii_key(ENV) == KEY.encode()
    for env in ({}, {privacy.KEY_ENV: "short"}):
        with pytest.raises(DataError) as err:
            privacy.pii_key(env)
        message = str(err.value)
        assert "\n" not in message and privacy.KEY_ENV in message and "config" in message
    with pytest.raises(DataError, match="data.pii_action to be drop or hash"):
        privacy.Policy.from_params({"pii_action": "encrypt"})


@pytest.fixture(scope="module")
def files_params() -> dict:
    """conf/ composed with data=files, once."""
    return compose_params(["data=files"])


def run_ingest(root: Path, base: dict, customers: str, transactions: str, env: dict | None = None,
               monkeypatch: pytest.MonkeyPatch | None = None, **data: object) -> dict:
    """Write the two CSVs under root and ingest them; returns reports/ingest.json."""
    (root / "tx.csv").write_text(transactions, encoding="utf-8")
    (root / "cust.csv").write_text(customers, encoding="utf-8")
    params = copy.deepcopy(base)
    params["data"].update({"transactions": "tx.csv", "customers": "cust.csv", "max_reject_share": None, **data})
    if monkeypatch is not None:
        monkeypatch.delenv(privacy.KEY_ENV, raising=False)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
    ingest.run(params, root)
    return json.loads((root / "reports" / "ingest.json").read_text(encoding="utf-8"))


TX = "customer_id,ts,amount\nc1,2024-01-01,10\nc1,2024-02-01,12\nc2,2024-01-05,5\nc3,2024-01-07,7\n"
CUSTOMERS = ("customer_id,signup_ts,region,Email,contact,mobile_phone,notes,consent\n"
             "c1,2023-12-01,north,ann.canary@example.com,Ann Canaryhill,+44 20 7946 0001,likes jazz,yes\n"
             "c2,2023-12-02,south,bob.canary@example.com,Bob Canarywood,+44 20 7946 0002,,no\n"
             "c3,2023-12-03,south,cy.canary@example.com,Cy Canaryfield,+44 20 7946 0003,12 Canary Lane,TRUE\n"
             "c3,2023-12-03,south,dup.canary@example.com,Dee Canaryfield,+44 20 7946 0004,,true\n"
             'c4,2023-12-04,west,ann.canary@example.com,Ann Canary,+44 20 7946 0005,,yes,extra,fields\n')


def test_ingest_drops_personal_data_from_kept_and_rejected_rows(tmp_path: Path, files_params: dict,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    tx = ("customer_id,ts,amount,buyer\nc1,2024-01-01,10,Ann Canaryhill\nc2,2024-01-05,5,Bob Canarywood\n"
          "c3,not a date,7,Cy Canaryfield\n")  # an extra transactions column with names; its bad row is rejected
    doc = run_ingest(tmp_path, files_params, CUSTOMERS, tx, monkeypatch=monkeypatch)
    assert doc["privacy"]["columns"]["transactions"] == {"buyer": "content: name"}
    assert doc["privacy"]["columns"]["customers"] == {
        "Email": "name: email", "contact": "content: name", "mobile_phone": "name: phone",
        "notes": "content: address"}
    assert doc["privacy"]["customer_id"] == "kept" and doc["privacy"]["consent"] is None
    kept = pd.read_parquet(tmp_path / "data/interim/customers.parquet")
    assert kept.columns.tolist() == ["customer_id", "signup_ts", "region", "gender", "age_band",
                                     "acquisition_channel", "consent"]
    assert kept["customer_id"].tolist() == ["c1", "c2", "c3"]
    rejected = pd.read_parquet(tmp_path / "data/interim/rejected/customers.parquet")
    assert sorted(rejected["reason"]) == ["duplicate_row", "malformed_row"]
    assert rejected["raw_line"].isna().all()  # the broken line held an e-mail address
    assert find_canaries(tmp_path, CANARIES) == []
    (tmp_path / "data" / "control.csv").write_text("ann.canary@example.com\n")  # the search does find them
    assert find_canaries(tmp_path, CANARIES) == [("data/control.csv", "canary")]


def test_hashing_keeps_joins_and_a_personal_customer_id_is_hashed_everywhere(
        tmp_path: Path, files_params: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    tx = ("customer_id,ts,amount\nann@canary.example,2024-01-01,10\nann@canary.example,2024-02-01,12\n"
          "bob@canary.example,2024-01-05,5\n bob@canary.example ,not a date,5\n")
    customers = "customer_id,signup_ts,phone\nann@canary.example,2023-12-01,+44 20 7946 0001\n"
    with pytest.raises(DataError, match=privacy.KEY_ENV):
        run_ingest(tmp_path, files_params, customers, tx, monkeypatch=monkeypatch)
    doc = run_ingest(tmp_path, files_params, customers, tx, ENV, monkeypatch, pii_action="hash")
    assert doc["privacy"]["customer_id"] == "hashed"
    ann, bob = (privacy.keyed_hash(v, KEY.encode()) for v in ("ann@canary.example", "bob@canary.example"))
    kept = pd.read_parquet(tmp_path / "data/interim/transactions.parquet")
    assert kept["customer_id"].tolist() == sorted([ann, ann, bob])
    profile = pd.read_parquet(tmp_path / "data/interim/customers.parquet")
    assert profile.set_index("customer_id")["phone"].to_dict() == {
        ann: privacy.keyed_hash("+44 20 7946 0001", KEY.encode())}
    rejected = pd.read_parquet(tmp_path / "data/interim/rejected/transactions.parquet")
    assert rejected["customer_id"].tolist() == [bob]  # the padded id hashes like the trimmed one
    assert find_canaries(tmp_path, CANARIES) == []


def test_customers_without_consent_are_left_out_and_counted(tmp_path: Path, files_params: dict,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    tx = TX + "c9,2024-01-09,3\n"  # c9 has no profile: no recorded consent
    doc = run_ingest(tmp_path, files_params, CUSTOMERS, tx, monkeypatch=monkeypatch, consent_column="Consent")
    assert doc["privacy"]["consent"] == {
        "column": "Consent", "customers_with_consent": 2, "customers_excluded": 1, "customers_without_profile": 1,
        "rows_excluded": {"transactions": 2, "customers": 1}}
    assert pd.read_parquet(tmp_path / "data/interim/transactions.parquet")["customer_id"].tolist() == [
        "c1", "c1", "c3"]
    assert pd.read_parquet(tmp_path / "data/interim/customers.parquet")["customer_id"].tolist() == ["c1", "c3"]
    with pytest.raises(DataError, match="found columns"):
        run_ingest(tmp_path, files_params, CUSTOMERS, TX, monkeypatch=monkeypatch, consent_column="gdpr_ok")


def test_outputs_can_carry_pseudonyms(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.DataFrame({"customer_id": pd.Series(["c1", "c2"], dtype="string"), "clv": [1.0, 2.0]})
    assert privacy.pseudonymiser({"scoring": {"pseudonymise_ids": False}}, {})(frame) is frame
    with pytest.raises(DataError, match="scoring.pseudonymise_ids"):
        privacy.pseudonymiser({"scoring": {"pseudonymise_ids": True}}, {})
    out = privacy.pseudonymiser({"scoring": {"pseudonymise_ids": True}}, ENV)(frame)
    assert out["customer_id"].tolist() == [privacy.keyed_hash(v, KEY.encode()) for v in ("c1", "c2")]
    assert frame["customer_id"].tolist() == ["c1", "c2"] and out["clv"].tolist() == [1.0, 2.0]
    assert out["customer_id"].dtype == frame["customer_id"].dtype
    forms = privacy.id_forms(["c1"], KEY.encode())
    assert forms == {"c1", privacy.keyed_hash("c1", KEY.encode()),
                     privacy.keyed_hash(privacy.keyed_hash("c1", KEY.encode()), KEY.encode())}


def test_canary_search_reads_compressed_parquet_and_duckdb(tmp_path: Path) -> None:
    table = pa.table({"customer_id": ["c1"] * 50, "email": ["ann.canary@example.com"] * 50})
    pq.write_table(table, tmp_path / "data.parquet", compression="zstd")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE t AS SELECT 'Ann Canaryhill' || (i % 3) AS name FROM range(5000) r(i)")
    con.close()
    hits = find_canaries(tmp_path, ["canary"], produced=["data.parquet", "w.duckdb"])
    assert hits == [("data.parquet", "canary"), ("w.duckdb", "canary")]


def test_content_rules_read_only_the_head_of_long_values():
    """A long free-text value is judged by its first MAX_TEXT characters (the regexes backtrack on megabytes)."""
    tail_email = "x" * privacy.MAX_TEXT + " ann.lee@example.com"
    assert privacy.kind_by_content([tail_email]) is None
    assert privacy.kind_by_content(["ann.lee@example.com " + "x" * 1_000_000]) == "email"
