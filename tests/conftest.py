"""Shared fixtures: Hydra-composed params and tiny contract-shaped frames."""

from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]

warnings.filterwarnings("ignore", module="lifetimes")


def compose_params(overrides: list[str] | None = None) -> dict:
    """conf/ composed through Hydra's compose API, as a plain dict."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=overrides or [])
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.fixture
def params() -> dict:
    """The default composed configuration."""
    return compose_params()


def tx_frame(rows: list[tuple]) -> pd.DataFrame:
    """Transactions in the contract shape from (customer_id, ts, amount[, channel, category]) tuples."""
    full = [(*r, *([None] * (5 - len(r)))) for r in rows]
    df = pd.DataFrame(full, columns=["customer_id", "ts", "amount", "channel", "category"])
    df["ts"] = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
    df["amount"] = df["amount"].astype(float)
    df["order_id"] = None
    df["quantity"] = 1.0
    return df[["customer_id", "ts", "amount", "order_id", "quantity", "channel", "category"]]


def event_frame(rows: list[tuple]) -> pd.DataFrame:
    """Events in the contract shape from (customer_id, ts, event_type[, value]) tuples."""
    full = [(*r, *([None] * (4 - len(r)))) for r in rows]
    df = pd.DataFrame(full, columns=["customer_id", "ts", "event_type", "value"])
    df["ts"] = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
    df["value"] = df["value"].astype(float)
    df["channel"] = None
    df["session_id"] = None
    return df[["customer_id", "ts", "event_type", "channel", "session_id", "value"]]


def cdnow_summary_rfm() -> pd.DataFrame:
    """lifetimes' CDNOW sample summary (cent-rounded mean repeat spend) in our RFM shape, in weeks."""
    path = resources.files("lifetimes").joinpath("datasets", "cdnow_customers_summary_with_transactions.csv")
    df = pd.read_csv(str(path))
    return pd.DataFrame({"customer_id": df["ID"].astype(str), "frequency": df["x"].astype(float),
                         "recency": df["t_x"], "T": df["T"], "monetary_value": df["zbar"]})


def load_registered(info: dict) -> object:
    """The pyfunc a stage registered (its mlflow JSON record), the global tracking URI restored afterwards."""
    import mlflow

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(info["tracking_uri"])
    try:
        return mlflow.pyfunc.load_model(f"models:/{info['registered_model']}/{info['registered_version']}")
    finally:
        mlflow.set_tracking_uri(before)
