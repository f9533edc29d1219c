"""Benchmark: score N synthetic customers end to end (data, features, CLV, churn with reasons, all sinks).

    python bench/bench_score.py --customers 1000000
    python bench/bench_score.py --customers 10000000          # the issue's scale target (peak RSS < 8 GB)

Under a bench root laid out like the repo (default /work/bench-data/score-<N>: data/raw, data/interim,
data/features, artifacts, outputs, reports, with dvc.yaml linked in), each step runs in its own child process
(this parent stays small, so each child's ru_maxrss is its own high-water mark) and reports wall time, CPU time
and peak RSS:

  generate   python -m pipelines.generate's writer: N customers streamed to Parquet (250k-customer chunks)
  ingest     pipelines.ingest.run with data=files on those Parquet files (data.duplicate_key=[order_id], as
             data=synthetic): contract checks, rejected rows, canonical Parquet under data/interim
  features   pipelines.features.run_score_only: the score role only (one table at as_of, all features)
  churn      a churn model trained on a separate, modest synthetic run (--churn-customers, another seed): its
             ingest, full features stage (train/eval/score), BTYD prior per cutoff, then train_churn's
             production refit (fit_churn on train + eval, stratified cap churn.max_train_rows) saved with
             train_churn.save_model into <root>/artifacts/churn.  Reused from --churn-root when already there.
  clv        train_clv's production refit on all N customers at as_of (fit_clv of clv.model, bgnbd when it
             is auto: the bench times one fit, not the selection; + Laplace parameter draws), saved as
             artifacts/clv/production.json and production_draws.json as train_clv writes them
  score      pipelines.score.run(params, root): CLV + its expected-value interval, churn with reason codes, risk
             bands, actions, deciles, streamed in scoring.chunk_rows chunks into CSV, Parquet and DuckDB
  reference  the same production CLV parameters put into lifetimes (BetaGeoFitter / GammaGammaFitter):
             customer_lifetime_value, conditional_expected_number_of_purchases_up_to_time and
             conditional_probability_alive on the same N customers vs our ClvModel.predict; ratios and
             agreement (only for clv.model=bgnbd)
  intervals  the score stage's CLV bounds (bounds.expected_clv_bounds: closed-form CLV per parameter draw on
             quantised rows, scaled to each exact point) vs the general `intervals` (every interval kind, with
             simulation) on --intervals-sample customers: seconds and mean bounds
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STEPS = ("generate", "ingest", "features", "churn", "clv", "score", "reference", "intervals")
RESULT = "BENCH_RESULT "
START, END = "2023-01-01", "2024-12-31"
GB = 2**30


# ----------------------------------------------------------------------------------------------- child steps

def _overrides(root: Path, extra: list[str]) -> list[str]:
    """Hydra overrides: the generated Parquet files as data=files input, as data=synthetic dedups them."""
    raw = root / "data" / "raw" / "synthetic"
    return ["data=files", f"data.transactions={raw / 'transactions.parquet'}",
            f"data.events={raw / 'events.parquet'}", f"data.customers={raw / 'customers.parquet'}",
            "data.duplicate_key=[order_id]", *extra]


def _params(root: Path, extra: list[str]) -> dict[str, Any]:
    """conf/ composed with the bench overrides."""
    from pipelines.config import compose

    return compose(_overrides(root, extra))


def prepare_root(root: Path) -> None:
    """The repo layout under root, with dvc.yaml linked so that paths.repo_root() finds it from inside."""
    for sub in ("data/raw", "data/interim", "data/features", "artifacts", "outputs", "reports"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    link = root / "dvc.yaml"
    if not link.exists():
        link.symlink_to(ROOT / "dvc.yaml")


def step_generate(root: Path, n: int, seed: int, extra: list[str]) -> dict[str, Any]:
    """Stream n synthetic customers to <root>/data/raw/synthetic."""
    from pipelines.generate import write_synthetic

    rows = write_synthetic(root / "data" / "raw" / "synthetic", n, seed, START, END, 250_000,
                           log=lambda line: print(line, file=sys.stderr, flush=True))
    return {"rows": rows}


def step_ingest(root: Path, n: int, seed: int, extra: list[str]) -> dict[str, Any]:
    """pipelines.ingest.run on the generated files."""
    from pipelines import ingest

    report = ingest.run(_params(root, extra), root)
    return {"kept": {t: report[t]["rows_kept"] for t in ("transactions", "events", "customers")},
            "rejected": {t: report[t]["rows_rejected"] for t in ("transactions", "events", "customers")}}


def step_features(root: Path, n: int, seed: int, extra: list[str]) -> dict[str, Any]:
    """The score role only (features at as_of)."""
    import pyarrow.dataset as ds

    from pipelines import features

    target = Path(features.run_score_only(_params(root, extra), root))
    table = ds.dataset(target, format="parquet")  # one file (DuckDB) or Spark's folder of parts (engine=spark)
    size = sum(Path(f).stat().st_size for f in table.files)
    return {"rows": table.count_rows(), "columns": len(table.schema.names), "mib": round(size / 2**20)}


def step_churn(root: Path, n: int, seed: int, extra: list[str], churn_root: Path, churn_n: int) -> dict[str, Any]:
    """A churn model from a modest separate synthetic run, saved as train_churn saves its refit."""
    target = root / "artifacts" / "churn"
    done = churn_root / "artifacts" / "churn" / "bench.json"
    if not done.exists():
        import pandas as pd

        from models.churn.config import ChurnConfig
        from models.churn.model import fit_churn
        from pipelines import features, ingest
        from pipelines.generate import write_synthetic
        from pipelines.train_churn import Locations, add_priors, read_frames, save_model, time_unit_days

        prepare_root(churn_root)
        times = {}
        started = time.perf_counter()
        write_synthetic(churn_root / "data" / "raw" / "synthetic", churn_n, seed + 1, START, END, 250_000,
                        log=lambda line: None)
        times["generate"] = time.perf_counter() - started
        params = _params(churn_root, extra)
        for name, fn in (("ingest", ingest.run), ("features", features.run)):
            started = time.perf_counter()
            fn(params, churn_root)
            times[name] = time.perf_counter() - started
        started = time.perf_counter()
        cfg = ChurnConfig.from_params(params.get("churn") or {}, seed=int(params.get("seed", 42)))
        frames = read_frames(Locations(churn_root))
        notes: list[str] = []
        cfg = add_priors(frames, cfg, int(params["windows"]["horizon_days"]), time_unit_days(params["features"]),
                         notes)
        fit_rows = pd.concat([frames["train"], frames["eval"]], ignore_index=True)
        model = fit_churn(fit_rows, cfg)
        save_model(model, churn_root / "artifacts" / "churn")
        times["fit"] = time.perf_counter() - started
        info = {"customers": churn_n, "seed": seed + 1, "fit_rows": len(fit_rows),
                "cutoffs": sorted(fit_rows["cutoff"].unique().tolist()), "notes": notes,
                "seconds": {k: round(v, 1) for k, v in times.items()},
                "info": {k: model.info.get(k) for k in ("mode", "n_fit_rows_used", "best_iteration", "calibration",
                                                        "prior", "n_features")}}
        done.write_text(json.dumps(info, indent=1, default=str), encoding="utf-8")
        cached = False
    else:
        info, cached = json.loads(done.read_text(encoding="utf-8")), True
    from pipelines import modelset

    staging = modelset.stage(target)  # with provenance.json, as train_churn commits its set (score verifies it)
    for path in (churn_root / "artifacts" / "churn").iterdir():
        if path.is_file() and path.name not in ("bench.json", modelset.PROVENANCE):
            shutil.copy2(path, staging / path.name)
    modelset.commit(staging, target, None)
    return {**info, "cached": cached}


def step_clv(root: Path, n: int, seed: int, extra: list[str]) -> dict[str, Any]:
    """The production refit (fit_clv + Laplace draws) on every customer at as_of; production*.json."""
    import pandas as pd

    from models.clv import fit_clv
    from models.clv.inputs import RFM_COLUMNS
    from models.clv.uncertainty import draws_to_dict, laplace_draws
    from pipelines import paths
    from pipelines.io import write_json
    from pipelines.runinfo import split_volatile
    from pipelines.train_churn import time_unit_days
    from pipelines.train_clv import ARTIFACT_FILES, ClvConfig

    params = _params(root, extra)
    seed = int(params.get("seed", 42))
    cfg = ClvConfig.from_params(params["clv"], seed)
    frame = pd.read_parquet(paths.rebase(paths.FEATURE_FILES["score"], root), columns=list(RFM_COLUMNS))
    started = time.perf_counter()
    model = fit_clv(frame, "bgnbd" if cfg.model == "auto" else cfg.model,
                    time_unit_days=time_unit_days(params["features"]), penalizer_grid=cfg.penalizer_grid, seed=seed)
    draws = laplace_draws(model, frame, cfg.n_draws, seed)
    fit_s = time.perf_counter() - started
    from pipelines import modelset

    folder = paths.rebase(ARTIFACT_FILES["production"], root).parent
    staging = modelset.stage(folder)  # with provenance.json, as train_clv commits its set (score verifies it)
    write_json(split_volatile(model.to_dict())[0], staging / ARTIFACT_FILES["production"].name)  # as train_clv
    write_json(draws_to_dict(draws), staging / ARTIFACT_FILES["production_draws"].name)
    modelset.commit(staging, folder, None)
    return {"fit_s": round(fit_s, 2), "model": model.model, "purchases": model.purchases.params,
            "spend": model.spend.params if model.spend is not None else None,
            "unique_rows": model.purchases.n_unique_rows, "draws": draws.n_draws}


def step_score(root: Path, n: int, seed: int, extra: list[str]) -> dict[str, Any]:
    """pipelines.score.run on all customers, all sinks."""
    from pipelines import score

    report = score.run(_params(root, extra), root)
    sizes = {p.name: round(p.stat().st_size / 2**20) for p in sorted((root / "outputs").iterdir()) if p.is_file()}
    return {k: report[k] for k in ("rows_in", "rows_out", "chunks", "seconds", "model_version")} | {
        "output_mib": sizes}


def step_reference(root: Path, n: int, seed: int, extra: list[str]) -> dict[str, Any]:
    """lifetimes vs ours on the same customers with the same (production) parameters: seconds and agreement."""
    import warnings

    import numpy as np
    import pandas as pd

    from models.clv import ClvModel
    from models.clv.inputs import RFM_COLUMNS
    from pipelines import paths
    from pipelines.train_clv import ARTIFACT_FILES

    params = _params(root, extra)
    model = ClvModel.from_dict(json.loads(paths.rebase(ARTIFACT_FILES["production"], root).read_text()))
    if model.model != "bgnbd" or model.time_unit_days != 1.0:
        return {"skipped": f"reference only for bgnbd in days (model {model.model}, unit {model.time_unit_days})"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter, GammaGammaFitter
    h, months = int(params["windows"]["horizon_days"]), int(params["clv"]["horizon_months"])
    rate, dpm = float(params["clv"]["discount_rate_monthly"]), float(params["clv"]["days_per_month"])
    if dpm != 30.0:
        return {"skipped": "lifetimes' customer_lifetime_value assumes 30-day months"}
    rfm = pd.read_parquet(paths.rebase(paths.FEATURE_FILES["score"], root), columns=list(RFM_COLUMNS))
    started = time.perf_counter()
    ours = model.predict(rfm, h, months, rate, days_per_month=dpm)
    ours_s = time.perf_counter() - started
    bgf, ggf = BetaGeoFitter(), GammaGammaFitter()
    bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time  # as BetaGeoFitter.fit sets it
    bgf.params_ = pd.Series({k: model.purchases.params[k] for k in ("r", "alpha", "a", "b")})
    sp = model.spend.params
    ggf.params_ = pd.Series({"p": sp["p"], "q": sp["q"], "v": sp["gamma"]})
    f, r, t, m = (rfm[c] for c in ("frequency", "recency", "T", "monetary_value"))
    seconds, values = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        values["clv"] = ggf.customer_lifetime_value(bgf, f, r, t, m, time=months, discount_rate=rate, freq="D")
        seconds["customer_lifetime_value"] = time.perf_counter() - started
        started = time.perf_counter()
        values["purchases"] = bgf.conditional_expected_number_of_purchases_up_to_time(h, f, r, t)
        values["p_alive"] = bgf.conditional_probability_alive(f, r, t)
        seconds["purchases_and_p_alive"] = time.perf_counter() - started
    pairs = {"clv": ours[f"clv_{months}m"], "purchases": ours[f"expected_purchases_{h}d"], "p_alive": ours["p_alive"]}
    agree = {}
    for key, mine in pairs.items():
        a, b = np.asarray(mine, dtype=float), np.asarray(values[key], dtype=float)
        rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-9)
        agree[key] = {"max_rel": float(np.nanmax(rel)), "median_rel": float(np.nanmedian(rel)),
                      "nan_lifetimes": int(np.isnan(b).sum())}
    total_ref = sum(seconds.values())
    return {"ours_predict_s": round(ours_s, 2), "lifetimes_s": {k: round(v, 2) for k, v in seconds.items()},
            "ratio_lifetimes_over_ours": round(total_ref / ours_s, 1), "agreement": agree,
            "note": "ours: all five outputs (p_alive, expected purchases, P(no purchase), AOV, CLV) in one call"}


def step_intervals(root: Path, n: int, seed: int, extra: list[str], sample: int) -> dict[str, Any]:
    """expected_clv_bounds (score stage) vs intervals (general, on quantised rows) on the same customers."""
    import numpy as np
    import pandas as pd

    from models.clv import ClvModel
    from models.clv.bounds import expected_clv_bounds, quantized
    from models.clv.uncertainty import Horizon, draws_from_dict, intervals
    from models.scoring.assemble import RFM, first_draws
    from models.scoring.config import ScoringConfig
    from pipelines import paths
    from pipelines.train_clv import ARTIFACT_FILES

    params = _params(root, extra)
    model = ClvModel.from_dict(json.loads(paths.rebase(ARTIFACT_FILES["production"], root).read_text()))
    draws = draws_from_dict(json.loads(paths.rebase(ARTIFACT_FILES["production_draws"], root).read_text()))
    cfg = ScoringConfig.from_params(params.get("scoring") or {})
    draws = first_draws(draws, cfg.interval_draws)
    rfm = pd.read_parquet(paths.rebase(paths.FEATURE_FILES["score"], root), columns=RFM)
    if len(rfm) > sample:
        rfm = rfm.sample(sample, random_state=seed)
    coarse = quantized(rfm, cfg.interval_grid_days / model.time_unit_days)
    clv = params["clv"]
    horizon = Horizon(int(params["windows"]["horizon_days"]), int(clv["horizon_months"]),
                      float(clv["discount_rate_monthly"]), float(clv["days_per_month"]))
    level, n_m = float(clv["interval"]), int(clv["horizon_months"])
    out = {"customers": len(rfm), "draws": draws.n_draws}
    started = time.perf_counter()
    point = model.predict(rfm, horizon.horizon_days, n_m, horizon.discount_rate_monthly,
                          days_per_month=horizon.days_per_month)[f"clv_{n_m}m"].to_numpy()
    got = expected_clv_bounds(model, draws, rfm, point, (horizon.horizon_days, n_m, horizon.discount_rate_monthly,
                                                         horizon.days_per_month), level,
                              cfg.interval_grid_days / model.time_unit_days)
    out["expected_clv_bounds"] = {"seconds": round(time.perf_counter() - started, 2),
                                  "mean_low": round(float(np.mean(got.low)), 3),
                                  "mean_high": round(float(np.mean(got.high)), 3), "widened": got.widened}
    started = time.perf_counter()
    general = intervals(model, coarse, draws, horizon, level, seed)
    out["intervals"] = {"seconds": round(time.perf_counter() - started, 2),
                        "mean_low": round(float(np.mean(general["clv_low"])), 3),
                        "mean_high": round(float(np.mean(general["clv_high"])), 3)}
    out["ratio"] = round(out["intervals"]["seconds"] / out["expected_clv_bounds"]["seconds"], 1)
    return out


def run_step(args: argparse.Namespace) -> None:
    """Child process: run one step, print its result line with own wall/CPU time and peak RSS."""
    root = args.root
    started = time.perf_counter()
    fns = {"generate": step_generate, "ingest": step_ingest, "features": step_features, "clv": step_clv,
           "score": step_score, "reference": step_reference}
    if args.step == "churn":
        out = step_churn(root, args.customers, args.seed, args.override, args.churn_root, args.churn_customers)
    elif args.step == "intervals":
        out = step_intervals(root, args.customers, args.seed, args.override, args.intervals_sample)
    else:
        out = fns[args.step](root, args.customers, args.seed, args.override)
    self_use, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    out.update(wall_s=round(time.perf_counter() - started, 2),
               cpu_s=round(self_use.ru_utime + self_use.ru_stime + kids.ru_utime + kids.ru_stime, 1),
               peak_rss_gib=round(max(self_use.ru_maxrss, kids.ru_maxrss) * 1024 / GB, 2))
    print(RESULT + json.dumps(out, default=str), flush=True)


# ----------------------------------------------------------------------------------------------- parent

def _proc_rss(pid: int) -> int:
    """Current RSS (bytes) of a process, 0 when gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def spawn(step: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one step in a child process; echo its output; return its result, polled peak RSS and load."""
    command = [sys.executable, __file__, "--step", step, "--customers", str(args.customers), "--seed",
               str(args.seed), "--root", str(args.root), "--churn-root", str(args.churn_root),
               "--churn-customers", str(args.churn_customers), "--intervals-sample", str(args.intervals_sample),
               *[f"--override={o}" for o in args.override]]
    load_before = os.getloadavg()[0]
    print(f"--- {step} (load average {load_before:.1f})", flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, bufsize=1)
    result: dict[str, Any] = {}
    polled = 0
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    while True:
        polled = max(polled, _proc_rss(proc.pid))
        if sel.select(timeout=0.25):
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith(RESULT):
                result = json.loads(line[len(RESULT):])
            else:
                print(line, end="", flush=True)
    if proc.wait() != 0:
        raise SystemExit(f"step {step} failed with exit status {proc.returncode}")
    result.update(parent_wall_s=round(time.perf_counter() - started, 2), polled_peak_rss_gib=round(polled / GB, 2),
                  load_avg=[round(load_before, 1), round(os.getloadavg()[0], 1)])
    print(f"    {step}: {json.dumps(result, default=str)}", flush=True)
    return result


def summary_table(n: int, results: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of wall time, CPU time and peak RSS per step, plus throughput and ratios."""
    lines = [f"| step ({n:,} customers) | wall s | CPU s | peak RSS GiB | load avg start/end |",
             "|---|---|---|---|---|"]
    for step, res in results.items():
        if "wall_s" not in res:
            continue
        lines.append(f"| {step} | {res['wall_s']:.1f} | {res['cpu_s']:.1f} | {res['peak_rss_gib']:.2f} | "
                     f"{res['load_avg'][0]} / {res['load_avg'][1]} |")
    if "score" in results:
        s = results["score"]
        lines.append(f"\nscore: {s['rows_out']:,} customers in {s['wall_s']:.1f} s = "
                     f"{s['rows_out'] / s['wall_s']:,.0f} customers/s ({s['chunks']} chunks); outputs MiB "
                     f"{s['output_mib']}")
    iv = results.get("intervals", {})
    if "ratio" in iv:
        lines.append(f"CLV bounds on {iv['customers']:,} customers ({iv['draws']} draws): score path "
                     f"{iv['expected_clv_bounds']} vs general intervals {iv['intervals']} -> {iv['ratio']}x")
    ref = results.get("reference", {})
    if "lifetimes_s" in ref:
        lines.append(f"reference: lifetimes {ref['lifetimes_s']} vs ours predict {ref['ours_predict_s']} s -> "
                     f"{ref['ratio_lifetimes_over_ours']}x; agreement {ref['agreement']}")
    peak = max(r.get("peak_rss_gib", 0) for r in results.values())
    lines.append(f"largest peak RSS of any step: {peak:.2f} GiB ({'under' if peak < 8 * 1e9 / GB else 'OVER'} 8 GB)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the requested steps in order, each in a child process, and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--root", type=Path, default=None, help="bench root (default /work/bench-data/score-<N>)")
    ap.add_argument("--churn-customers", type=int, default=200_000, help="customers of the churn training run")
    ap.add_argument("--churn-root", type=Path, default=None,
                    help="root of the churn training run (default /work/bench-data/score-churn-<M>)")
    ap.add_argument("--intervals-sample", type=int, default=1_000_000,
                    help="customers for the intervals comparison (the general path is ~10x slower)")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    ap.add_argument("--override", action="append", default=[], help="extra Hydra override (repeatable)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.root = args.root or Path(f"/work/bench-data/score-{args.customers}")
    args.churn_root = args.churn_root or Path(f"/work/bench-data/score-churn-{args.churn_customers}")
    if args.step:
        run_step(args)
        return 0
    prepare_root(args.root)
    results: dict[str, dict[str, Any]] = {}
    for step in args.steps.split(","):
        results[step] = spawn(step, args)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    print(summary_table(args.customers, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
