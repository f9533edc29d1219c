"""Benchmark: our CLV path (compressed fits + vectorised outputs) vs the straightforward lifetimes path.

Customers are drawn straight from a BG/NBD + Gamma-Gamma process with numpy (models.clv.simulate), in
days, at daily granularity (integer ages and recencies, spend in cents), as the feature builder emits them.
Both paths run in the same process on the same frame:
  ours:      fit_clv (BG/NBD on unique (x, t_x, T) rows, Gamma-Gamma on unique (x, m) rows) + predict
             (p_alive, expected purchases and P(no purchase) over 90 days, expected AOV, 12-month CLV);
             then the Pareto/NBD fit alone on the same customers (target <= 10 s at 2M)
  lifetimes: BetaGeoFitter.fit and GammaGammaFitter.fit on every row + customer_lifetime_value (12 months)
             (--skip-lifetimes leaves it out)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.clv import fit_clv  # noqa: E402
from models.clv.fitting import fit_purchase_model  # noqa: E402
from models.clv.simulate import simulate  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes import BetaGeoFitter, GammaGammaFitter  # noqa: E402

DAYS = 730
PURCHASES = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426}  # CDNOW's BG/NBD, in days
SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}
HORIZON_DAYS, MONTHS, DISCOUNT = 90, 12, 0.01


def make_rfm(n: int, seed: int) -> pd.DataFrame:
    """n customers aged 0..730 days, observed at whole-day granularity."""
    ages = np.random.default_rng(seed).integers(0, DAYS + 1, n).astype(float)
    rfm = simulate("bgnbd", PURCHASES, ages, 0.0, seed + 1, SPEND).drop(columns="future_purchases")
    rfm["recency"] = np.floor(rfm["recency"])
    rfm["monetary_value"] = rfm["monetary_value"].round(2)
    rfm.loc[(rfm["frequency"] > 0) & (rfm["monetary_value"] <= 0), "monetary_value"] = 0.01
    return rfm


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def ours(rfm: pd.DataFrame) -> tuple[dict, pd.DataFrame, dict]:
    """Our path: seconds per step, the predictions, the fitted parameters."""
    model, fit_s = timed(fit_clv, rfm, "bgnbd", time_unit_days=1.0)
    pred, pred_s = timed(model.predict, rfm, HORIZON_DAYS, MONTHS, DISCOUNT)
    seconds = {"bgnbd_fit": model.purchases.seconds, "gamma_gamma_fit": model.spend.seconds,
               "fit_total": fit_s, "outputs": pred_s, "total": fit_s + pred_s}
    info = {"purchases": model.purchases.params, "spend": model.spend.params,
            "unique_rows": model.purchases.n_unique_rows, "spend_unique_rows": model.spend.n_unique_rows,
            "warm_start_customers": model.purchases.diagnostics.get("warm_start_customers"),
            "boundary": model.purchases.boundary}
    return seconds, pred, info


def pareto(rfm: pd.DataFrame) -> tuple[float, dict]:
    """Seconds and report of our Pareto/NBD fit on the same customers."""
    x, tx, age = (rfm[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    report, seconds = timed(fit_purchase_model, "pareto_nbd", x, tx, age, (), 0)
    return seconds, {"params": report.params, "log_likelihood": report.log_likelihood, "boundary": report.boundary}


def reference(rfm: pd.DataFrame) -> tuple[dict, pd.Series, dict]:
    """The straightforward lifetimes path: seconds per step, 12-month CLV, fitted parameters."""
    frame = rfm.set_index("customer_id")
    repeat = frame[frame["frequency"] > 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgf, bg_s = timed(BetaGeoFitter().fit, frame["frequency"], frame["recency"], frame["T"])
        ggf, gg_s = timed(GammaGammaFitter().fit, repeat["frequency"], repeat["monetary_value"])
        clv, clv_s = timed(ggf.customer_lifetime_value, bgf, frame["frequency"], frame["recency"], frame["T"],
                           frame["monetary_value"], time=MONTHS, discount_rate=DISCOUNT, freq="D")
    seconds = {"bgnbd_fit": bg_s, "gamma_gamma_fit": gg_s, "clv": clv_s, "total": bg_s + gg_s + clv_s}
    params = {"purchases": bgf.params_.to_dict(), "spend": {"p": ggf.params_["p"], "q": ggf.params_["q"],
                                                           "gamma": ggf.params_["v"]}}
    return seconds, clv, params


def max_rel(a: dict, b: dict) -> float:
    """Largest relative difference between two parameter dicts."""
    return max(abs(a[k] / b[k] - 1) for k in a)


def main() -> None:
    """Generate, time both paths on the same frame, compare results, print the ratio."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-lifetimes", action="store_true", help="time our path only")
    args = ap.parse_args()

    rfm, gen_s = timed(make_rfm, args.customers, args.seed)
    print(f"data: {len(rfm):,} customers ({int((rfm['frequency'] > 0).sum()):,} repeat buyers), "
          f"generated in {gen_s:.1f} s")
    mine, pred, info = ours(rfm)
    pareto_s, pareto_info = pareto(rfm)
    print(f"ours       BG/NBD fit {mine['bgnbd_fit']:6.2f} s | Gamma-Gamma fit "
          f"{mine['gamma_gamma_fit']:6.2f} s | all outputs {mine['outputs']:6.2f} s | "
          f"total {mine['total']:6.2f} s")
    print(f"ours       Pareto/NBD fit {pareto_s:6.2f} s (target <= 10 s): {pareto_info}")
    if args.skip_lifetimes:
        print(json.dumps({"customers": len(rfm), "ours_s": mine, "pareto_nbd_fit_s": pareto_s}))
        return
    theirs, clv, params = reference(rfm)
    clv_ours = pred[f"clv_{MONTHS}m"].to_numpy()
    clv_ref = clv.to_numpy()
    rel = np.abs(clv_ours - clv_ref) / np.maximum(np.abs(clv_ref), 1e-9)

    print(f"ours       unique rows: BG/NBD {info['unique_rows']:,}, "
          f"Gamma-Gamma {info['spend_unique_rows']:,}; "
          f"warm start on {info['warm_start_customers']:,} customers")
    print(f"lifetimes  BG/NBD fit {theirs['bgnbd_fit']:6.2f} s | Gamma-Gamma fit "
          f"{theirs['gamma_gamma_fit']:6.2f} s | CLV only    {theirs['clv']:6.2f} s | "
          f"total {theirs['total']:6.2f} s")
    print(f"ratio      lifetimes / ours : {theirs['total'] / mine['total']:6.1f}x")
    print(f"agreement  params max rel diff: BG/NBD {max_rel(info['purchases'], params['purchases']):.1e}, "
          f"Gamma-Gamma {max_rel(info['spend'], params['spend']):.1e}; "
          f"CLV rel diff median {np.median(rel):.1e}, max {rel.max():.1e}")
    print(json.dumps({"customers": len(rfm), "ours_s": mine, "pareto_nbd_fit_s": pareto_s, "lifetimes_s": theirs,
                      "ratio": theirs["total"] / mine["total"], "clv_max_rel_diff": float(rel.max())}))


if __name__ == "__main__":
    main()
