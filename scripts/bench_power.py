"""Power and size of the verdict: run the whole pipeline on planted-signal Step 3 directories.

A benchmark run by hand (never by the tests). For each variant of the generator family
(:data:`VARIANTS`: the horizon, the informative legs, a volatility condition), planted IC and seed
it writes a Step 3 directory with ``allocator synth-step3`` (the reference engine's legs, real or,
with ``--resample BLOCK``, a stationary block bootstrap of them; confidence columns replaced by a
signal of correlation IC with the next H sessions' leg spread; IC 0 is pure noise, run once, on
the first variant),
runs ``allocator --step3 DIR --profile P run`` in a home of its own (the real pipeline: Dagster
runs, gates; the nested study when the profile or ``--config`` switches it on), and reads
``metrics.json``. It prints, per IC: the acceptance rate; the
allocator's and the planted rule's CAGR, Calmar and average monthly PnL minus the baseline's
(the rule trades the same columns plainly, a fixed 20-session trailing mean whatever the horizon:
the gain available, ``core/evaluation/retention.py``); the share of the rule's Calmar
gain the allocator captures and the share its weight choice alone captures ("model only", fully
invested, against the rule fully invested); the turnover; and the stage retention (correlation with the future spread of the
planted signal, its trailing mean, w_raw, w_smoothed, w_final). Results go to ``--out`` as JSON.

The three-way verdict (``core/evaluation/comparisons.py``) is reported per run: whether the envelope
earns on its own, the model's increment over "envelope only" and the comparison with the
confidence rule, and the maximum drawdowns. A planted signal counts as **found** when the seed's
verdict accepts *and* the model's increment passes; pure noise (IC 0) counts as **refused** when
the model's increment fails (the envelope may earn on noise).

    .venv/bin/python scripts/bench_power.py --variants base,h10,h5,spy,high_vol,flip --ics 0,0.3 \\
        --seeds 0,1,2 --resample 60 --jobs 2

``--evaluate-only`` runs the evaluation stage again on the homes a grid left (11 to 16 s each here;
the same data arguments and profile, recorded in each home), for a change of the evaluation alone,
and replaces the grid's entries in ``--out`` (each keeping its run's wall time), the others kept.

Wall time: about one ``make run`` per (IC, seed); with the default profile (tuning off) about one
minute here, 1.5 to 3 minutes with the study on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from allocator_pipeline.core.evaluation.bootstrap import paired_bootstrap
from allocator_pipeline.core.evaluation.comparisons import COMPARISONS, model_found_skill
from allocator_pipeline.settings import BootstrapSettings

REPO = Path(__file__).resolve().parents[1]
ALLOCATOR = Path(sys.executable).with_name("allocator")


def run(cmd: list[str], log: Path) -> None:
    """Run ``cmd`` in the folder of ``log`` (a run's home: its own Dagster instance there, so that
    runs side by side never share one)."""
    with log.open("w") as fh:
        code = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=log.parent)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {code}); see {log}")


VARIANTS: dict[str, dict[str, str]] = {
    "base": {},
    "h10": {"--horizon": "10"},
    "h5": {"--horizon": "5"},
    "qqq": {"--legs": "qqq"},
    "spy": {"--legs": "spy"},
    "high_vol": {"--condition": "high_vol"},
    "flip": {"--condition": "flip"},
}
"""The generator family (``allocator synth-step3`` options; ``base``: the next 20 sessions, both legs,
everywhere). The IC is a grid axis of its own."""


def home_of(work: Path, variant: str, ic: float, seed: int, resample: float | None) -> Path:
    return work / f"{variant}_ic{ic}_seed{seed}{'' if resample is None else f'_rs{resample:g}'}"


def one(
    work: Path,
    profile: str,
    variant: str,
    ic: float,
    seed: int,
    resample: float | None,
    extra: list[str],
    evaluate_only: bool = False,
) -> dict:
    """One run: ``synth-step3`` then the whole pipeline in a home of its own, or with
    ``evaluate_only`` the evaluation stage again on an existing home (the same stored models and
    path: what a change of the evaluation alone gives)."""
    home = home_of(work, variant, ic, seed, resample)
    started = time.monotonic()
    if evaluate_only:
        data, profile = recorded_arguments(home, profile)
        run([str(ALLOCATOR), "--home", str(home), *data, "--profile", profile, "backtest"], home / "evaluate.log")
        return summary(home, variant, ic, seed, resample, started)
    home.mkdir(parents=True, exist_ok=True)
    step3 = home / "planted"
    source = work / "reference" / "step3_out"
    options = [x for pair in VARIANTS[variant].items() for x in pair]
    if resample is not None:
        options += ["--resample", str(resample)]
    synth = [str(ALLOCATOR), "--home", str(home), "synth-step3", str(step3), "--ic", str(ic), "--seed", str(seed)]
    run([*synth, *options, "--source", str(source)], home / "synth.log")
    if resample is None:
        data = ["--step3", str(step3), *extra]
    else:  # the resampled fixture brings its settings ([data]); a --config's sections are appended to them
        merged = home / "run.toml"
        parts = [(step3 / "allocator.toml").read_text()]
        if extra:
            parts.append(Path(extra[1]).read_text())
        merged.write_text("\n".join(parts))
        data = ["--config", str(merged)]
    (home / RUN_ARGUMENTS).write_text(json.dumps({"data": data, "profile": profile}))
    run([str(ALLOCATOR), "--home", str(home), *data, "--profile", profile, "run"], home / "run.log")
    return summary(home, variant, ic, seed, resample, started)


RUN_ARGUMENTS = "run_arguments.json"


def recorded_arguments(home: Path, profile: str) -> tuple[list[str], str]:
    """The data arguments and profile a home's run was made with (``run_arguments.json``; a
    resampled home of an earlier version of this script: its ``run.toml``), so that an evaluation
    again reads the same Step 3 directory under the same settings; refused when ``profile`` differs."""
    recorded = home / RUN_ARGUMENTS
    if recorded.is_file():
        args = json.loads(recorded.read_text())
        data, made_with = list(args["data"]), str(args["profile"])
    elif (home / "run.toml").is_file():
        data, made_with = ["--config", str(home / "run.toml")], profile
    else:
        raise SystemExit(f"--evaluate-only: {home} records no run arguments ({RUN_ARGUMENTS}); run it again in full")
    if made_with != profile:
        raise SystemExit(f"--evaluate-only: {home} was run with --profile {made_with}, not {profile}")
    return data, made_with


def summary(home: Path, variant: str, ic: float, seed: int, resample: float | None, started: float) -> dict:
    """The figures of one run home, read from its ``metrics.json`` and ``oos_daily.parquet``."""
    backtest = home / "step3_out" / "allocator" / "backtest"
    metrics = json.loads((backtest / "metrics.json").read_text())
    strategies = metrics["strategies"]
    daily = pd.read_parquet(backtest / "oos_daily.parquet")
    # the two "beats the baseline" gates applied to the rule: would the plain rule itself pass them?
    rule_boot = paired_bootstrap(
        daily["ret_planted_rule"], daily["ret_baseline"], daily["realized_ts"], BootstrapSettings()
    )

    def delta(strategy: str, key: str) -> float:
        return float(strategies[strategy][key]) - float(strategies["baseline"][key])

    base_calmar = float(strategies["baseline"]["calmar"])
    rule_gain = float(strategies["planted_rule"]["calmar"]) - base_calmar
    model_only_gain = float(strategies["model_only"]["calmar"]) - base_calmar
    return {
        "variant": variant,
        "resample": resample,
        "ic": ic,
        "seed": seed,
        # the weight choice alone: the allocator's w_smoothed fully invested against the rule's weight fully
        # invested (same costs), as a share of the rule's Calmar gain over the baseline
        "model_only_share": model_only_gain / rule_gain if rule_gain > 0 else float("nan"),
        "turnover": float(strategies["allocator"]["turnover"]),
        "rule_turnover": float(strategies["planted_rule"]["turnover"]),
        "accepted": bool(metrics["accepted"]),
        "failed_gates": [g["name"] for g in metrics["gates"] if g["passed"] is False],
        "not_evaluated": [g["name"] for g in metrics["gates"] if g["passed"] is None],
        "allocator": {k: delta("allocator", k) for k in ("cagr", "calmar", "avg_monthly_pnl")},
        "rule": {k: delta("planted_rule", k) for k in ("cagr", "calmar", "avg_monthly_pnl")},
        "rule_passes_beats_baseline_gates": all(rule_boot[m]["lower"] > 0 for m in ("calmar", "avg_monthly_pnl")),
        "comparisons": {n: bool((metrics["comparisons"].get(n) or {}).get("passed")) for n in COMPARISONS},
        "found": model_found_skill(metrics["comparisons"]),
        "max_drawdown": {k: float(strategies[k]["max_drawdown"]) for k in ("allocator", "baseline", "envelope_only")},
        "retention": metrics["planted_signal"]["retention"],
        "seconds": time.monotonic() - started,
    }


def _key(r: dict) -> tuple[str, str, float]:
    resample = r.get("resample")
    return r.get("variant", "base"), "real path" if resample is None else f"resampled (block {resample:g})", r["ic"]


def table(results: list[dict]) -> str:
    lines = [
        "| variant | legs | IC | seeds | accepted | found (noise: refused) | model increment | envelope earns | "
        "beats conf. rule | rule passes | MaxDD alloc / baseline (cut, worst seed) | dCalmar alloc (rule) | "
        "dmPnL bp alloc (rule) | model-only share of rule's Calmar gain (lowest seed) | turnover /yr (rule) | "
        "signal / trailing mean | w_raw / w_smoothed / w_final | wall s |",
        "|" + "---|" * 18,
    ]
    for key in sorted({_key(r) for r in results}):
        variant, legs, ic = key
        rows = [r for r in results if _key(r) == key]

        def mean(side: str, k: str, rows: list[dict] = rows) -> float:
            return float(np.mean([r[side][k] for r in rows]))

        def ret(k: str, rows: list[dict] = rows) -> float:
            return float(np.mean([r["retention"][k] for r in rows]))

        shares = [r.get("model_only_share", float("nan")) for r in rows]
        rule_passes = sum(bool(r.get("rule_passes_beats_baseline_gates")) for r in rows)
        found = sum(r["found"] for r in rows) if ic > 0 else sum(not r["comparisons"]["model_increment"] for r in rows)
        cuts = [1.0 - r["max_drawdown"]["allocator"] / r["max_drawdown"]["baseline"] for r in rows]

        def passes(name: str, rows: list[dict] = rows) -> str:
            return f"{sum(r['comparisons'][name] for r in rows)}/{len(rows)}"

        lines.append(
            f"| {variant} | {legs} | {ic} | {','.join(str(r['seed']) for r in rows)} | "
            f"{sum(r['accepted'] for r in rows)}/{len(rows)} | "
            f"{found}/{len(rows)}{'' if ic > 0 else ' refused'} | {passes('model_increment')} | {passes('envelope')} | "
            f"{passes('confidence_rule')} | {rule_passes}/{len(rows)} | "
            f"{np.mean([r['max_drawdown']['allocator'] for r in rows]) * 100:.1f}% / "
            f"{np.mean([r['max_drawdown']['baseline'] for r in rows]) * 100:.1f}% ({min(cuts):.0%}) | "
            f"{mean('allocator', 'calmar'):+.3f} ({mean('rule', 'calmar'):+.3f}) | "
            f"{mean('allocator', 'avg_monthly_pnl') * 1e4:+.1f} ({mean('rule', 'avg_monthly_pnl') * 1e4:+.1f}) | "
            f"{np.nanmean(shares) if ic > 0 else float('nan'):.2f} ({np.min(shares) if ic > 0 else float('nan'):.2f}) | "
            f"{np.mean([r.get('turnover', float('nan')) for r in rows]):.1f} "
            f"({np.mean([r.get('rule_turnover', float('nan')) for r in rows]):.1f}) | "
            f"{ret('signal'):+.3f} / {ret('signal_trailing_mean'):+.3f} | "
            f"{ret('w_raw'):+.3f} / {ret('w_smoothed'):+.3f} / {ret('w_final'):+.3f} | "
            f"{sum(r['seconds'] for r in rows):.0f} |"
        )
    return "\n".join(lines)


def _key_of(result: dict) -> tuple:
    return (result.get("variant", "base"), result["ic"], result["seed"], result.get("resample"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default", help="settings profile of every run (default: default)")
    parser.add_argument("--variants", default="base", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--ics", default="0,0.15,0.3", help="planted ICs, comma-separated (0: pure noise)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds, comma-separated")
    parser.add_argument(
        "--resample",
        type=float,
        help="mean block (sessions) of a stationary block bootstrap of the legs (synth-step3 --resample); "
        "default: the real legs",
    )
    parser.add_argument("--work", default=str(REPO / "bench_power_work"), help="working folder (git-ignored)")
    parser.add_argument("--out", help="results (JSON), appended run by run (default: WORK/power.json)")
    parser.add_argument("--config", help="an allocator.toml for every run (e.g. a shorter fold range)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (each a whole pipeline; default 1)")
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="re-run only the evaluation stage (allocator backtest) on the grid's existing homes under --work, "
        "the same stored models, and write the results afresh to --out (after a change of the evaluation)",
    )
    args = parser.parse_args()
    work = Path(args.work).resolve()
    extra = ["--config", str(Path(args.config).resolve())] if args.config else []
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    reference = work / "reference"
    if not args.evaluate_only and not (reference / "step3_out" / "backtest").is_dir():
        reference.mkdir(parents=True, exist_ok=True)
        print("building the reference engine's legs once ...", flush=True)
        run([str(ALLOCATOR), "--home", str(reference), *extra, "build-dataset"], reference / "build.log")
    out = Path(args.out) if args.out else work / "power.json"
    results = json.loads(out.read_text()) if out.is_file() else []
    done = {_key_of(r) for r in results}
    started = time.monotonic()
    todo = [
        (variant, ic, seed)
        for variant in variants
        for ic in (float(x) for x in args.ics.split(","))
        for seed in (int(x) for x in args.seeds.split(","))
        if (args.evaluate_only or (variant, ic, seed, args.resample) not in done)
        and not (ic == 0 and variant != variants[0])
    ]
    if args.evaluate_only:  # the grid's entries are replaced (keeping each run's own wall time), the others kept
        again = {(v, ic, seed, args.resample) for v, ic, seed in todo}
        run_seconds = {_key_of(r): r.get("seconds") for r in results if _key_of(r) in again}
        results = [r for r in results if _key_of(r) not in again]
        missing = [h for h in (home_of(work, *t, args.resample) for t in todo) if not h.is_dir()]
        if missing:
            raise SystemExit(f"--evaluate-only: no run home {missing[0]}; run the grid without it first")
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [
            pool.submit(one, work, args.profile, v, ic, seed, args.resample, extra, args.evaluate_only)
            for v, ic, seed in todo
        ]
        for future in futures:
            result = future.result()
            if args.evaluate_only:
                result["evaluate_seconds"] = result["seconds"]
                result["seconds"] = run_seconds.get(_key_of(result), float("nan"))
            results.append(result)
            out.write_text(json.dumps(results, indent=2))
            print(
                f"{result['variant']} IC {result['ic']} seed {result['seed']}: accepted {result['accepted']} "
                f"{result['failed_gates']} found {result['found']} {result['comparisons']} "
                f"MaxDD {result['max_drawdown']['allocator']:.3f} (baseline {result['max_drawdown']['baseline']:.3f}) "
                f"dCalmar {result['allocator']['calmar']:+.3f} (rule {result['rule']['calmar']:+.3f}) "
                f"model-only share {result['model_only_share']:.2f} turnover {result['turnover']:.1f}, "
                f"{result['seconds']:.0f} s",
                flush=True,
            )
    print(f"\nprofile {args.profile}, {len(results)} runs, {time.monotonic() - started:.0f} s this call\n")
    print(table(results))


if __name__ == "__main__":
    main()
