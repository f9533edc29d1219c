"""Synthetic campaigns with a known effect, added to generated data (features/synthetic.py).

Story: campaign k is sent at one instant (09:00 UTC of its day); the last one's horizon ends `end_margin_days`
before the window's end and consecutive campaigns are `horizon_days + gap_days` apart, so no campaign's
horizon overlaps another's. Each customer whose first purchase precedes the send is targeted with
probability `target_share` and, at random, put in the treatment group with probability `treatment_share`.
Potential outcomes: Y0 = "any purchase in (sent_at, sent_at + H]" in the generated stream. Responders are
targeted customers with Y0 = 0 who are still alive at the send (latent dropout after it): a lapsed customer
does not answer an e-mail. Each responder converts with probability c = uplift x targeted / responders, and
a converted *treated* responder gets one extra purchase uniformly in the horizon. So E[Y1 - Y0] over the
targeted customers equals `uplift` exactly, and the effect is heterogeneous (only alive non-buyers move),
which an uplift model can learn from recency and frequency.

Draws come from their own RNG stream (SeedSequence((seed, STREAM))), so the base tables are unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features import contract
from features.synthetic import DEFAULT_PARAMS, SyntheticData, TrueParams, parse_window

STREAM = 0xCA4A16
SEND_HOUR_DAYS = 9 / 24


@dataclass(frozen=True)
class CampaignSpec:
    """How many campaigns, their true uplift on P(purchase in horizon), horizon and assignment shares."""

    n_campaigns: int = 0
    uplift: float = 0.05
    horizon_days: int = 60
    target_share: float = 0.5
    treatment_share: float = 0.5
    gap_days: int = 30
    end_margin_days: int = 1

    def __post_init__(self) -> None:
        """Reject settings the simulation cannot use."""
        if self.n_campaigns < 0 or self.horizon_days < 1 or self.gap_days < 0 or self.end_margin_days < 0:
            raise ValueError(f"campaign spec needs n_campaigns >= 0, horizon_days >= 1, gap_days >= 0 and "
                             f"end_margin_days >= 0, got {self}")
        if not 0 <= self.uplift <= 1:
            raise ValueError(f"campaign uplift must lie in [0, 1], got {self.uplift!r}")
        for name in ("target_share", "treatment_share"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"campaign {name} must lie in (0, 1), got {getattr(self, name)!r}")

    @classmethod
    def from_params(cls, block: dict[str, Any] | None) -> CampaignSpec:
        """From the `data.synthetic_campaigns` block of params.yaml (None = no campaigns)."""
        return cls(**(block or {}))


def send_days(spec: CampaignSpec, window_days: float) -> np.ndarray:
    """Day offsets (from the window start) of each campaign's send, oldest first."""
    last = np.floor(window_days - spec.end_margin_days - spec.horizon_days - 1)
    days = last - (spec.horizon_days + spec.gap_days) * np.arange(spec.n_campaigns)[::-1] + SEND_HOUR_DAYS
    if len(days) and days[0] <= 0:
        raise ValueError(f"{spec.n_campaigns} campaigns {spec.horizon_days + spec.gap_days} days apart do not fit "
                         f"in a {window_days:.0f}-day window: fewer campaigns or a shorter horizon")
    return days


def _days(ts: pd.Series, start_us: int) -> np.ndarray:
    """Day offsets of UTC timestamps from the window start."""
    return (ts.astype("datetime64[us, UTC]").astype("int64").to_numpy() - start_us) / 86_400_000_000


def simulate(data: SyntheticData, spec: CampaignSpec, seed: int, start: str, end: str,
             params: TrueParams = DEFAULT_PARAMS) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(campaigns table, extra purchase rows, per-campaign truth) for the generated data."""
    first, last = parse_window(start, end)
    start_us, window_days = first.value // 1000, (last - first) / pd.Timedelta(days=1) + 1.0
    rng = np.random.default_rng(np.random.SeedSequence((seed, STREAM)))
    truth = data.truth
    ids = truth["customer_id"].astype(str).to_numpy()
    n = len(ids)
    birth, dropout = _days(truth["birth_ts"], start_us), _days(truth["dropout_ts"], start_us)
    tx = data.transactions
    buys = (tx["amount"].isna() | (tx["amount"] >= 0)).to_numpy()
    cust = pd.Index(ids).get_indexer(tx["customer_id"].astype(str))[buys]
    bought = _days(tx["ts"], start_us)[buys]
    campaigns, extras, rows = [], [], []
    for k, sent in enumerate(send_days(spec, window_days)):
        name = f"campaign_{k + 1}"
        targeted = (birth < sent) & (rng.random(n) < spec.target_share)
        treated = rng.random(n) < spec.treatment_share
        y0 = np.zeros(n, dtype=bool)
        y0[cust[(bought > sent) & (bought <= sent + spec.horizon_days)]] = True
        responders = targeted & ~y0 & (dropout > sent)
        conversion = spec.uplift * targeted.sum() / max(int(responders.sum()), 1)
        if conversion > 1:
            raise ValueError(f"{name}: uplift {spec.uplift} exceeds the share of alive non-buyers among targeted "
                             f"customers ({responders.sum() / max(targeted.sum(), 1):.3f}): lower the uplift")
        responds = responders & (rng.random(n) < conversion)  # Y1 - Y0 for every customer
        converted = responds & treated
        who = np.flatnonzero(targeted)
        campaigns.append(pd.DataFrame({"customer_id": ids[who], "campaign": name,
                                       "sent_at": start_us + int(round(sent * 86_400_000_000)),
                                       "group": np.where(treated[who], "treatment", "control")}))
        buyers = np.flatnonzero(converted)
        at = sent + (1.0 - rng.random(len(buyers))) * spec.horizon_days
        extras.append(_purchases(rng, truth, buyers, at, start_us, params, f"-C{k + 1}"))
        rows.append({"campaign": name, "sent_day": float(sent), "targeted": int(targeted.sum()),
                     "responders": int(responders.sum()), "conversion_probability": float(conversion),
                     "true_uplift": spec.uplift,
                     "sample_uplift": float(responds.sum() / max(int(targeted.sum()), 1))})
    table = pd.concat(campaigns, ignore_index=True) if campaigns else contract.empty_table("campaigns").to_pandas()
    if campaigns:
        table["sent_at"] = pd.to_datetime(table["sent_at"], unit="us", utc=True)
    extra = pd.concat(extras, ignore_index=True) if extras else tx.iloc[:0]
    return table, extra, pd.DataFrame(rows)


def _purchases(rng: np.random.Generator, truth: pd.DataFrame, who: np.ndarray, at: np.ndarray, start_us: int,
               params: TrueParams, suffix: str) -> pd.DataFrame:
    """Transaction rows of campaign purchases: Gamma-Gamma amounts, order id O<number><suffix>."""
    ids = truth["customer_id"].astype(str).to_numpy()[who]
    nu = truth["nu"].to_numpy()[who]
    return pd.DataFrame({
        "customer_id": ids,
        "ts": pd.to_datetime(start_us + np.floor(at * 86_400_000_000).astype(np.int64), unit="us", utc=True),
        "amount": np.maximum(np.round(rng.gamma(params.p, 1.0 / nu), 2), 0.01),
        "order_id": ["O" + cid.lstrip("C") + suffix for cid in ids],
        "quantity": 1.0 + rng.poisson(params.extra_quantity_mean, len(who)),
        "channel": np.asarray(params.channels, dtype=object)[rng.choice(len(params.channels), len(who),
                                                                          p=params.channel_probs)],
        "category": np.asarray(params.categories, dtype=object)[rng.choice(len(params.categories), len(who),
                                                                             p=params.category_probs)],
    })


def add_campaigns(data: SyntheticData, spec: CampaignSpec, seed: int, start: str, end: str,
                  params: TrueParams = DEFAULT_PARAMS) -> SyntheticData:
    """data with the campaigns table and the campaign purchases merged into transactions (sorted)."""
    if spec.n_campaigns == 0:
        return data
    table, extra, _ = simulate(data, spec, seed, start, end, params)
    tx = pd.concat([data.transactions, extra.astype(data.transactions.dtypes.to_dict())], ignore_index=True)
    tx = tx.sort_values(["customer_id", "ts"], kind="stable", ignore_index=True)
    return dataclasses.replace(data, transactions=tx, campaigns=table)
