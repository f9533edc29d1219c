"""Churn model speed: training on N customers x 2 cutoffs, scoring with reason codes (customers / second).

    python bench/bench_churn.py [--customers 1000000] [--score 200000] [--threads 2]
                                [--compare "override ..."] [hydra overrides]

--compare fits a second model with those overrides (e.g. the previous defaults) on the same rows and scores
the same customers in the same run, printing the scoring-speed ratio (timings are noisy on a shared machine).

The feature tables are generated here with NumPy (shape of data/features: RFM, trends, behaviour counts,
profile categoricals, labels); nothing is read from disk. Targets (issue): training <= 120 s for 1,000,000
customers x 2 cutoffs on 2 cores; scoring with top-3 reason codes >= 100,000 customers/s.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.churn import ChurnConfig, fit_churn, score_with_reasons  # noqa: E402
from pipelines.config import load_params  # noqa: E402

CATEGORIES = {
    "main_channel": ["web", "app", "store", "phone"],
    "main_category": ["books", "music", "video", "games", "toys", "garden"],
    "region": ["north", "south", "east", "west", "centre"],
    "gender": ["f", "m", "x"],
    "age_band": ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"],
    "acquisition_channel": ["search", "social", "email", "referral", "direct"],
    "rfm_segment": [
        "champions",
        "at_risk_loyal",
        "promising_big_spender",
        "win_back_big_spender",
        "loyal_low_spend",
        "at_risk_low_spend",
        "new_low_spend",
        "lost",
    ],
}
EVENTS = ("page_view", "product_view", "add_to_cart", "checkout_start", "email_open", "email_click", "search")


def synthetic_cutoff(n: int, cutoff: str, rng: np.random.Generator, labelled: bool = True) -> pd.DataFrame:
    """One cutoff of feature rows for n customers (~55 features), churn driven by recency and activity."""
    tenure = rng.integers(1, 720, n)
    frequency = rng.negative_binomial(1, 0.35, n).astype(float)
    recency = np.where(frequency > 0, np.floor(rng.uniform(0, 1, n) * tenure), 0.0)
    dslp = tenure - recency
    engagement = rng.gamma(1.5, 1.0, n) * np.exp(-dslp / 200)
    cols: dict[str, np.ndarray | pd.Categorical | str] = {
        "customer_id": np.char.add("c", np.arange(n).astype(str)),
        "cutoff": cutoff,
        "frequency": frequency,
        "recency": recency,
        "T": tenure.astype(float),
        "monetary_value": np.where(frequency > 0, rng.gamma(2.0, 25.0, n).round(2), 0.0),
        "recency_days": recency,
        "tenure_days": tenure,
        "days_since_last_purchase": dslp,
        "orders_total": frequency + 1,
        "revenue_net_total": rng.gamma(2.0, 40.0, n) * (frequency + 1),
        "avg_order_value": rng.gamma(2.0, 25.0, n),
        "max_order_value": rng.gamma(3.0, 25.0, n),
        "return_rate": rng.beta(0.5, 8.0, n),
        "mean_gap_days": np.where(frequency > 0, recency / np.maximum(frequency, 1), np.nan),
        "days_since_signup": tenure + rng.integers(0, 30, n),
    }
    for w in (30, 90):
        cols[f"orders_last_{w}d"] = rng.poisson(engagement * w / 60)
        cols[f"orders_prev_{w}d"] = rng.poisson(engagement * w / 50)
        cols[f"revenue_last_{w}d"] = cols[f"orders_last_{w}d"] * rng.gamma(2.0, 25.0, n)
    for event in EVENTS:
        for w in (7, 30, 90):
            cols[f"{event}_{w}d"] = rng.poisson(engagement * w / 10)
    cols["days_since_last_event"] = np.where(
        engagement > 0.05, rng.exponential(20 / (engagement + 0.1)), np.nan
    )
    cols["email_open_rate_90d"] = np.where(rng.random(n) < 0.7, rng.beta(2, 5, n), np.nan)
    for name, labels in CATEGORIES.items():
        codes = rng.integers(-1 if name != "rfm_segment" else 0, len(labels), n)
        cols[name] = pd.Categorical.from_codes(codes, labels)
    frame = pd.DataFrame(cols)
    # A stand-in for the BTYD prior column (churn.prior): P(no purchase) rising with dormancy.
    frame["btyd_p_no_purchase"] = 1 / (1 + np.exp(-(-0.8 + 0.005 * dslp - 0.3 * np.log1p(frequency))))
    logit = (
        -1.2
        + 0.006 * dslp
        - 0.35 * np.log1p(frequency)
        - 0.08 * frame["page_view_30d"]
        - 0.5 * (frame["main_channel"] == "app")
        + 0.3 * (frame["age_band"] == "18-24")
    )
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    frame["churned"] = churned if labelled else np.nan
    frame["future_purchases"] = np.where(churned == 1, 0.0, 1.0) if labelled else np.nan
    frame["future_revenue"] = np.nan
    return frame


def bench_one(
    label: str, overrides: list[str], train: pd.DataFrame, score: pd.DataFrame, args: argparse.Namespace
) -> float:
    """Train with the overrides, score with reason codes; print the figures and return customers / second."""
    params = load_params(overrides)
    block = {**params["churn"], "params": {**params["churn"]["params"], "num_threads": args.threads}}
    cfg = ChurnConfig.from_params(block, seed=args.seed)
    started = time.perf_counter()
    model = fit_churn(train, cfg)
    train_s = time.perf_counter() - started
    info = model.info
    print(
        f"  [{label}: {' '.join(overrides) or 'defaults'}] prior={cfg.prior} lr={cfg.params.get('learning_rate')} "
        f"leaves={cfg.params.get('num_leaves')}",
        flush=True,
    )
    print(
        f"  train: {train_s:.1f}s  mode={info['mode']} fit_rows={info['n_fit_rows_used']:,} "
        f"holdout_rows={info['n_holdout_rows']:,} trees={model.booster.num_trees()} "
        f"holdout_auc={info.get('holdout', {}).get('roc_auc_raw', float('nan')):.4f} "
        f"holdout_logloss={info.get('holdout', {}).get('log_loss_calibrated', float('nan')):.4f} "
        f"load={os.getloadavg()[0]:.2f}  target <= 120s: {'ok' if train_s <= 120 else 'MISSED'}",
        flush=True,
    )
    model.trees()  # parse the booster once, as a scoring stage would
    started = time.perf_counter()
    scored = score_with_reasons(model, score, k=cfg.reason_codes)
    score_s = time.perf_counter() - started
    rate = len(score) / score_s
    print(
        f"  score + {cfg.reason_codes} reasons: {len(score):,} customers in {score_s:.2f}s = {rate:,.0f}/s "
        f"load={os.getloadavg()[0]:.2f}  target >= 100,000/s: {'ok' if rate >= 100_000 else 'MISSED'}"
    )
    print(f"  example: p={scored['p_churn'].iloc[0]:.3f} | {' | '.join(scored.iloc[0, 1:])}", flush=True)
    return rate


def main(argv: list[str] | None = None) -> int:
    """Run the training and scoring benchmarks and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--score", type=int, default=200_000, help="customers scored with reason codes")
    parser.add_argument("--threads", type=int, default=2, help="LightGBM num_threads (0 = all cores)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--compare", default=None, help="space-separated overrides of a second model to compare")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. churn.params.learning_rate=0.1")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"bench_churn: {os.cpu_count()} cores, load average before {os.getloadavg()}", flush=True)

    started = time.perf_counter()
    train = pd.concat(
        [synthetic_cutoff(args.customers, c, rng) for c in ("2024-01-01", "2024-07-01")], ignore_index=True
    )
    score = synthetic_cutoff(args.score, "2025-01-01", rng, labelled=False)
    print(
        f"  generated {len(train):,} training rows x {train.shape[1]} columns in "
        f"{time.perf_counter() - started:.1f}s",
        flush=True,
    )

    runs = [("config", args.overrides)]
    if args.compare is not None:
        runs.append(("compare", args.compare.split()))
    rates = {}
    for label, overrides in runs:
        rates[label] = bench_one(label, overrides, train, score, args)
    if len(rates) == 2:
        print(
            f"  scoring speed ratio config / compare ({' '.join(runs[1][1])}) = "
            f"{rates['config'] / rates['compare']:.2f}x (same run, same customers)"
        )
    print(
        f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, "
        f"load average after {os.getloadavg()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
