"""The seeded synthetic generator: determinism, contract schemas, BG/NBD invariants, behaviour and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lifetimes import BetaGeoFitter
from lifetimes.utils import summary_data_from_transaction_data
from pandas.testing import assert_frame_equal

from features import contract, synthetic
from features.synthetic import SyntheticData, TrueParams, generate, iter_chunks
from pipelines import generate as cli

START, END = "2023-01-01", "2024-12-31"
END_EXCLUSIVE = pd.Timestamp("2025-01-01", tz="UTC")
TABLES = ("transactions", "events", "customers", "truth")


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    """20,000 customers shared by the read-only checks (about 0.5 s)."""
    return generate(20_000, 42, START, END)


def _assert_same(left: SyntheticData, right: SyntheticData) -> None:
    """Every table of left equals the one of right."""
    for name in TABLES:
        assert_frame_equal(getattr(left, name), getattr(right, name))


def test_same_seed_gives_identical_frames() -> None:
    _assert_same(generate(3_000, 7, START, END), generate(3_000, 7, START, END))


def test_different_seed_gives_different_frames() -> None:
    one, two = generate(3_000, 7, START, END), generate(3_000, 8, START, END)
    assert not one.transactions["ts"].equals(two.transactions["ts"])
    assert not one.truth["lambda_per_day"].equals(two.truth["lambda_per_day"])


def test_generate_equals_concatenated_chunks() -> None:
    chunks = list(iter_chunks(15_000, 5, START, END, chunk_size=10_000))
    assert [len(chunk.customers) for chunk in chunks] == [10_000, 5_000]
    joined = SyntheticData(**{name: pd.concat([getattr(c, name) for c in chunks], ignore_index=True)
                              for name in TABLES})
    _assert_same(generate(15_000, 5, START, END), joined)


def test_first_index_reproduces_the_matching_slice_of_a_larger_run() -> None:
    whole = generate(2 * synthetic.BLOCK_SIZE, 9, START, END)
    tail = generate(synthetic.BLOCK_SIZE, 9, START, END, first_index=synthetic.BLOCK_SIZE)
    for name in TABLES:
        frame = getattr(whole, name)
        part = frame[frame["customer_id"] > f"C{synthetic.BLOCK_SIZE:07d}"].reset_index(drop=True)
        assert_frame_equal(part, getattr(tail, name))


def test_block_rngs_are_the_seedsequence_spawn_children() -> None:
    spawned = np.random.SeedSequence(123).spawn(4)[3]
    assert (spawned.generate_state(4) == np.random.SeedSequence(123, spawn_key=(3,)).generate_state(4)).all()


@pytest.mark.parametrize("name", TABLES)
def test_frames_have_the_contract_columns_and_types(data: SyntheticData, name: str) -> None:
    schema = synthetic.TABLE_SCHEMAS[name]
    frame = getattr(data, name)
    assert list(frame.columns) == schema.names
    for field in schema:
        dtype = frame[field.name].dtype
        if pa.types.is_timestamp(field.type):
            assert str(dtype) == "datetime64[us, UTC]"
        elif pa.types.is_string(field.type):
            assert pd.api.types.is_string_dtype(dtype)
        elif pa.types.is_floating(field.type):
            assert dtype == np.float64
        else:
            assert dtype == np.bool_
    assert synthetic.to_arrow(data)[name].schema.equals(schema)


def test_contract_schemas_are_the_canonical_ones() -> None:
    for name in ("transactions", "events"):
        assert synthetic.TABLE_SCHEMAS[name] is contract.SCHEMAS[name]
    customers = synthetic.TABLE_SCHEMAS["customers"]  # the contract's profile plus the canary personal data
    assert customers.names == [*contract.CUSTOMERS.names, *synthetic.PII_COLUMNS]


def test_profiles_carry_canary_personal_data(data: SyntheticData) -> None:
    first = data.customers.iloc[0]
    assert first["customer_id"] == "C0000001" and first["full_name"] == "Bram Canarywood"
    assert first["email"] == "bram.canarywood.0000001@canary-mail.example" and first["phone"] == "+1-555-00000001"
    for column in synthetic.PII_COLUMNS:
        text = data.customers[column].str.lower()
        assert text.str.contains("canary").all() or text.str.startswith("+1-555-0").all(), column


@pytest.mark.parametrize("name", ["transactions", "events"])
def test_rows_are_sorted_by_customer_then_time(data: SyntheticData, name: str) -> None:
    frame = getattr(data, name)
    same_customer = frame["customer_id"].to_numpy()[1:] == frame["customer_id"].to_numpy()[:-1]
    assert (frame["customer_id"].to_numpy()[1:] >= frame["customer_id"].to_numpy()[:-1]).all()
    assert (np.diff(frame["ts"].astype("int64").to_numpy())[same_customer] >= 0).all()


def test_transactions_lie_between_birth_dropout_and_end(data: SyntheticData) -> None:
    rows = data.transactions.merge(data.truth, on="customer_id", validate="many_to_one")
    assert (rows["ts"] >= rows["birth_ts"]).all()
    assert (rows["ts"] <= rows["dropout_ts"]).all()
    assert (rows["ts"] < END_EXCLUSIVE).all()


def test_first_purchase_is_birth(data: SyntheticData) -> None:
    first = data.transactions.groupby("customer_id")["ts"].min()
    truth = data.truth.set_index("customer_id")["birth_ts"]
    assert first.sort_index().equals(truth.sort_index())


def test_dead_customers_die_at_their_last_purchase(data: SyntheticData) -> None:
    last = data.transactions[data.transactions["amount"] > 0].groupby("customer_id")["ts"].max()
    truth = data.truth.set_index("customer_id")
    dead = truth[~truth["alive_at_end"]]
    assert len(dead) > 1_000
    assert (last.reindex(dead.index) == dead["dropout_ts"]).all()
    assert (truth["alive_at_end"] == (truth["dropout_ts"] >= END_EXCLUSIVE)).all()


def test_customer_ids_are_unique_and_shared(data: SyntheticData) -> None:
    ids = data.customers["customer_id"]
    assert ids.is_unique and data.truth["customer_id"].is_unique
    assert set(ids) == set(data.truth["customer_id"])
    assert ids.str.fullmatch(r"C\d{7}").all()
    assert set(data.transactions["customer_id"]) == set(ids)
    assert set(data.events["customer_id"]) <= set(ids)


def test_signup_is_not_after_first_purchase(data: SyntheticData) -> None:
    first = data.transactions.groupby("customer_id")["ts"].min()
    signup = data.customers.set_index("customer_id")["signup_ts"]
    assert (signup.reindex(first.index) <= first).all()


def test_events_stop_at_dropout_except_email_sends(data: SyntheticData) -> None:
    events = data.events
    assert (events["ts"] < END_EXCLUSIVE).all() and (events["ts"] >= pd.Timestamp(START, tz="UTC")).all()
    engaged = events[events["event_type"] != "email_sent"]
    dropout = engaged["customer_id"].map(data.truth.set_index("customer_id")["dropout_ts"])
    assert (engaged["ts"] <= dropout).all()
    assert set(data.events["event_type"]) <= set(contract.EVENT_TYPES)


def test_event_values_are_ratings_or_durations(data: SyntheticData) -> None:
    events = data.events
    ratings = events.loc[events["event_type"].isin(["support_ticket", "review"]), "value"]
    assert ratings.between(1, 5).all() and (ratings == ratings.round()).all()
    durations = events.loc[events["event_type"].isin(["page_view", "product_view"]), "value"]
    assert (durations > 0).all()
    valued = ["support_ticket", "review", "page_view", "product_view"]
    others = events.loc[~events["event_type"].isin(valued)]
    assert others["value"].isna().all()


def test_event_volume_is_moderate(data: SyntheticData) -> None:
    per_customer = len(data.events) / len(data.customers)
    assert 20 <= per_customer <= 45


def test_events_fade_before_dropout(data: SyntheticData) -> None:
    truth, customers = data.truth, data.customers.set_index("customer_id")
    signup = customers["signup_ts"].reindex(truth["customer_id"])
    first_seen = signup.clip(lower=pd.Timestamp(START, tz="UTC"))
    history = truth["dropout_ts"].to_numpy() - first_seen.to_numpy()
    dead = truth[~truth["alive_at_end"].to_numpy() & (history >= pd.Timedelta(days=180))]
    assert len(dead) > 1_000
    events = data.events[data.events["event_type"] != "email_sent"].merge(dead[["customer_id", "dropout_ts"]])
    days_before = (events["dropout_ts"] - events["ts"]) / pd.Timedelta(days=1)
    rate_last_30 = days_before.between(0, 30, inclusive="left").sum() / (30 * len(dead))
    rate_90_180 = days_before.between(90, 180, inclusive="left").sum() / (90 * len(dead))
    assert rate_last_30 < 0.7 * rate_90_180  # measured ~0.5x


def test_bgnbd_fit_recovers_the_true_parameters(data: SyntheticData) -> None:
    purchases = data.transactions[data.transactions["amount"] > 0]
    frame = pd.DataFrame({"customer_id": purchases["customer_id"].astype(object),
                          "date": purchases["ts"].dt.tz_localize(None)})
    rfm = summary_data_from_transaction_data(frame, "customer_id", "date", observation_period_end=END,
                                             freq="D", freq_multiplier=7)
    fitted = BetaGeoFitter().fit(rfm["frequency"], rfm["recency"], rfm["T"]).params_
    true = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # alpha per week: rfm is in weeks
    for name, value in true.items():  # seeds 1-11 deviated at most 9%
        assert fitted[name] == pytest.approx(value, rel=0.2), name


def test_mean_amount_matches_the_gamma_gamma_expectation(data: SyntheticData) -> None:
    params = TrueParams()
    expected = params.p * params.gamma / (params.q - 1)
    amounts = data.transactions.loc[data.transactions["amount"] > 0, "amount"]
    assert amounts.mean() == pytest.approx(expected, rel=0.1)


def test_returns_reference_earlier_orders(data: SyntheticData) -> None:
    tx = data.transactions
    assert tx["order_id"].is_unique
    returns = tx[tx["amount"] < 0]
    assert 0.01 <= len(returns) / len(tx) <= 0.04
    originals = tx.set_index("order_id").loc[returns["order_id"].str.removesuffix("-R")]
    assert (originals["customer_id"].to_numpy() == returns["customer_id"].to_numpy()).all()
    assert (originals["ts"].to_numpy() < returns["ts"].to_numpy()).all()
    assert (-returns["amount"].to_numpy() <= originals["amount"].to_numpy()).all()
    assert (returns["quantity"] < 0).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_customers": 0}, "n_customers"),
        ({"seed": -1}, "seed"),
        ({"end": "2023-01-01"}, "end"),
        ({"end": "2022-06-01"}, "end"),
        ({"start": "not a date"}, "start"),
    ],
)
def test_invalid_arguments_raise_value_error(kwargs: dict, message: str) -> None:
    args = {"n_customers": 10, "seed": 1, "start": START, "end": END, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(**args)


def test_iter_chunks_checks_arguments_before_iterating() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        iter_chunks(100, 1, START, END, chunk_size=1_000)
    with pytest.raises(ValueError, match="end"):
        iter_chunks(100, 1, END, START)


def test_invalid_true_params_raise_value_error() -> None:
    with pytest.raises(ValueError, match="alpha"):
        TrueParams(alpha=0.0)
    with pytest.raises(ValueError, match="q"):
        TrueParams(q=1.0)


def test_true_params_dict_is_json_serialisable() -> None:
    payload = json.loads(json.dumps(synthetic.true_params_dict(TrueParams())))
    assert payload["r"] == 0.243 and math.isclose(payload["alpha"], 4.414 * 7)
    assert payload["session_event_rates"]["page_view"] > 0


def test_cli_writes_the_tables_of_generate(tmp_path, capsys) -> None:
    out = tmp_path / "synthetic"
    assert cli.main(["--customers", "12000", "--seed", "3", "--start", START, "--end", END,
                     "--out", str(out), "--chunk-size", "10000"]) == 0
    expected = generate(12_000, 3, START, END)
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{name}.parquet" for name in TABLES]
                                                           + ["true_params.json"])
    for name in TABLES:
        table = pq.read_table(out / f"{name}.parquet")
        assert table.schema.equals(synthetic.TABLE_SCHEMAS[name])
        assert table.num_rows == len(getattr(expected, name))
    assert_frame_equal(pq.read_table(out / "transactions.parquet").to_pandas(), expected.transactions)
    params = json.loads((out / "true_params.json").read_text())
    assert params["r"] == 0.243 and params["generation"]["rows"]["customers"] == 12_000
    assert capsys.readouterr().out.count("chunk ") == 2


def test_cli_rejects_invalid_arguments_without_writing(tmp_path, capsys) -> None:
    out = tmp_path / "synthetic"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--customers", "0", "--seed", "1", "--out", str(out)])
    assert exit_info.value.code == 2
    assert "n_customers" in capsys.readouterr().err
    assert not out.exists()


REGIME_N = 2_000


def _regime(name: str) -> SyntheticData:
    """One regime's tables for REGIME_N customers (the regime may fix its own count)."""
    chosen = synthetic.regime(name)
    return generate(chosen.customers(REGIME_N), 7, START, END, params=chosen.params())


def _repeat_days(data: SyntheticData) -> pd.Series:
    """Repeat purchase days x per customer (distinct purchase days minus one)."""
    buys = data.transactions[data.transactions["amount"] >= 0]
    return buys["ts"].dt.floor("D").groupby(buys["customer_id"]).nunique() - 1


def test_default_regime_is_the_default_generator() -> None:
    assert synthetic.regime(None).params() == synthetic.DEFAULT_PARAMS == synthetic.regime("default").params()
    _assert_same(_regime("default"), generate(REGIME_N, 7, START, END))


def test_unknown_regime_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="data.regime must be one of default, no_dropout, .* got 'tiny'"):
        synthetic.regime("tiny")


def test_no_dropout_regime_keeps_everyone_alive() -> None:
    truth = _regime("no_dropout").truth
    assert (truth["p_dropout"] == 0).all() and truth["alive_at_end"].all()
    assert (truth["dropout_ts"] > END_EXCLUSIVE).all()


def test_heavy_dropout_regime_loses_most_repeat_buyers() -> None:
    def dead_share(data: SyntheticData) -> float:
        repeaters = _repeat_days(data).pipe(lambda x: x[x > 0].index)
        return float(1 - data.truth.set_index("customer_id").loc[repeaters, "alive_at_end"].mean())

    heavy, default = dead_share(_regime("heavy_dropout")), dead_share(_regime("default"))
    assert heavy > 0.7 and heavy > default + 0.25, (heavy, default)


def test_small_regime_has_300_customers() -> None:
    data = _regime("small")
    assert len(data.customers) == len(data.truth) == 300 == data.transactions["customer_id"].nunique()


def test_heavy_buyers_regime_has_many_customers_over_300_repeat_days() -> None:
    x = _repeat_days(_regime("heavy_buyers"))
    assert (x > 300).sum() >= 0.04 * REGIME_N, int((x > 300).sum())
    assert (_repeat_days(_regime("default")) > 300).sum() == 0


def test_continuous_acquisition_spreads_first_purchases_over_the_window() -> None:
    birth = _regime("continuous_acquisition").truth["birth_ts"]
    quarter = ((birth - pd.Timestamp(START, tz="UTC")) / (END_EXCLUSIVE - pd.Timestamp(START, tz="UTC")) * 4)
    shares = quarter.astype(int).value_counts(normalize=True).sort_index()
    assert list(shares.index) == [0, 1, 2, 3] and shares.min() > 0.2, shares.to_dict()


def test_cli_regime_writes_that_regime(tmp_path) -> None:
    out = tmp_path / "small"
    assert cli.main(["--customers", "5000", "--seed", "7", "--out", str(out), "--regime", "small"]) == 0
    assert pq.read_table(out / "customers.parquet").num_rows == 300
    assert json.loads((out / "true_params.json").read_text())["generation"]["regime"] == "small"
