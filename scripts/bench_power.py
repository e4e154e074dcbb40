"""Power and size of the verdict: run the whole pipeline on planted-signal Step 3 directories.

A benchmark run by hand (never by the tests). For each planted IC and seed it writes a Step 3
directory with ``allocator synth-step3`` (the reference engine's real legs, confidence columns
replaced by a signal of correlation IC with the next H sessions' leg spread; IC 0 is pure noise),
runs ``allocator --step3 DIR --profile P run`` in a home of its own (the real pipeline: Dagster
runs, gates; the nested study when the profile or ``--config`` switches it on), and reads
``metrics.json``. It prints, per IC: the acceptance rate; the
allocator's and the transparent rule's CAGR, Calmar and average monthly PnL minus the baseline's
(the rule trades the same columns plainly: the gain available); the share of the rule's Calmar
gain the allocator captures; and the stage retention (correlation with the future spread of the
planted signal, its trailing mean, w_raw, w_smoothed, w_final). Results go to ``--out`` as JSON.

The three-way verdict (``core/evaluation/comparisons.py``) is reported per run: whether the envelope
earns on its own, the model's increment over "envelope only" and the comparison with the
confidence rule, and the maximum drawdowns. A planted signal counts as **found** when the seed's
verdict accepts *and* the model's increment passes; pure noise (IC 0) counts as **refused** when
the model's increment fails (the envelope may earn on noise).

    .venv/bin/python scripts/bench_power.py --profile default --ics 0,0.05,0.1,0.2,0.25,0.3 --seeds 0,1,2

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


def one(work: Path, profile: str, ic: float, seed: int, horizon: int, extra: list[str]) -> dict:
    home = work / f"ic{ic}_seed{seed}"
    home.mkdir(parents=True, exist_ok=True)
    step3 = home / "planted"
    source = work / "reference" / "step3_out"
    started = time.monotonic()
    run(
        [
            str(ALLOCATOR),
            "--home",
            str(home),
            "synth-step3",
            str(step3),
            "--ic",
            str(ic),
            "--seed",
            str(seed),
            "--horizon",
            str(horizon),
            "--source",
            str(source),
        ],
        home / "synth.log",
    )
    run(
        [str(ALLOCATOR), "--home", str(home), "--step3", str(step3), "--profile", profile, *extra, "run"],
        home / "run.log",
    )
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

    return {
        "ic": ic,
        "seed": seed,
        "accepted": bool(metrics["accepted"]),
        "failed_gates": [g["name"] for g in metrics["gates"] if not g["passed"]],
        "allocator": {k: delta("allocator", k) for k in ("cagr", "calmar", "avg_monthly_pnl")},
        "rule": {k: delta("planted_rule", k) for k in ("cagr", "calmar", "avg_monthly_pnl")},
        "rule_passes_beats_baseline_gates": all(rule_boot[m]["lower"] > 0 for m in ("calmar", "avg_monthly_pnl")),
        "comparisons": {n: bool((metrics["comparisons"].get(n) or {}).get("passed")) for n in COMPARISONS},
        "found": model_found_skill(metrics["comparisons"]),
        "max_drawdown": {k: float(strategies[k]["max_drawdown"]) for k in ("allocator", "baseline", "envelope_only")},
        "retention": metrics["planted_signal"]["retention"],
        "seconds": time.monotonic() - started,
    }


def table(results: list[dict]) -> str:
    lines = [
        "| IC | seeds | accepted | found (noise: refused) | envelope earns | beats conf. rule | rule passes | "
        "MaxDD alloc / baseline (shallowest-seed cut, worst seed) | dCAGR alloc (rule) | dCalmar alloc (rule) | "
        "dmPnL bp alloc (rule) | share of rule's Calmar gain (lowest seed) | signal / trailing mean | "
        "w_raw / w_smoothed / w_final | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ic in sorted({r["ic"] for r in results}):
        rows = [r for r in results if r["ic"] == ic]

        def mean(side: str, key: str, rows: list[dict] = rows) -> float:
            return float(np.mean([r[side][key] for r in rows]))

        def ret(key: str, rows: list[dict] = rows) -> float:
            return float(np.mean([r["retention"][key] for r in rows]))

        share = mean("allocator", "calmar") / mean("rule", "calmar") if mean("rule", "calmar") > 0 else float("nan")
        shares = [r["allocator"]["calmar"] / r["rule"]["calmar"] for r in rows if r["rule"]["calmar"] > 0]
        lowest = min(shares) if len(shares) == len(rows) else float("nan")
        rule_passes = sum(bool(r.get("rule_passes_beats_baseline_gates")) for r in rows)
        found = sum(r["found"] for r in rows) if ic > 0 else sum(not r["comparisons"]["model_increment"] for r in rows)
        cuts = [1.0 - r["max_drawdown"]["allocator"] / r["max_drawdown"]["baseline"] for r in rows]

        def passes(name: str, rows: list[dict] = rows) -> str:
            return f"{sum(r['comparisons'][name] for r in rows)}/{len(rows)}"

        lines.append(
            f"| {ic} | {','.join(str(r['seed']) for r in rows)} | {sum(r['accepted'] for r in rows)}/{len(rows)} | "
            f"{found}/{len(rows)}{'' if ic > 0 else ' refused'} | {passes('envelope')} | {passes('confidence_rule')} | "
            f"{rule_passes}/{len(rows)} | "
            f"{np.mean([r['max_drawdown']['allocator'] for r in rows]) * 100:.1f}% / "
            f"{np.mean([r['max_drawdown']['baseline'] for r in rows]) * 100:.1f}% ({min(cuts):.0%} shallower at least) | "
            f"{mean('allocator', 'cagr') * 100:+.2f} pp ({mean('rule', 'cagr') * 100:+.2f}) | "
            f"{mean('allocator', 'calmar'):+.3f} ({mean('rule', 'calmar'):+.3f}) | "
            f"{mean('allocator', 'avg_monthly_pnl') * 1e4:+.1f} ({mean('rule', 'avg_monthly_pnl') * 1e4:+.1f}) | "
            f"{share:.2f} ({lowest:.2f}) | {ret('signal'):+.3f} / {ret('signal_trailing_mean'):+.3f} | "
            f"{ret('w_raw'):+.3f} / {ret('w_smoothed'):+.3f} / {ret('w_final'):+.3f} | "
            f"{sum(r['seconds'] for r in rows):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default", help="settings profile of every run (default: default)")
    parser.add_argument("--ics", default="0,0.05,0.1,0.2,0.25,0.3", help="planted ICs, comma-separated")
    parser.add_argument("--seeds", default="0,1,2", help="seeds, comma-separated")
    parser.add_argument("--horizon", type=int, default=20, help="H of the planted spread (sessions)")
    parser.add_argument("--work", default=str(REPO / "bench_power_work"), help="working folder (git-ignored)")
    parser.add_argument("--out", help="results (JSON), appended run by run (default: WORK/power.json)")
    parser.add_argument("--config", help="an allocator.toml for every run (e.g. a shorter fold range)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (each a whole pipeline; default 1)")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    extra = ["--config", str(Path(args.config).resolve())] if args.config else []
    reference = work / "reference"
    if not (reference / "step3_out" / "backtest").is_dir():
        reference.mkdir(parents=True, exist_ok=True)
        print("building the reference engine's legs once ...", flush=True)
        run([str(ALLOCATOR), "--home", str(reference), *extra, "build-dataset"], reference / "build.log")
    out = Path(args.out) if args.out else work / "power.json"
    results = json.loads(out.read_text()) if out.is_file() else []
    done = {(r["ic"], r["seed"]) for r in results}
    started = time.monotonic()
    todo = [
        (ic, seed)
        for ic in (float(x) for x in args.ics.split(","))
        for seed in (int(x) for x in args.seeds.split(","))
        if (ic, seed) not in done
    ]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(one, work, args.profile, ic, seed, args.horizon, extra) for ic, seed in todo]
        for future in futures:
            result = future.result()
            results.append(result)
            out.write_text(json.dumps(results, indent=2))
            print(
                f"IC {result['ic']} seed {result['seed']}: accepted {result['accepted']} {result['failed_gates']} "
                f"found {result['found']} {result['comparisons']} MaxDD {result['max_drawdown']['allocator']:.3f} "
                f"(baseline {result['max_drawdown']['baseline']:.3f}) dCalmar {result['allocator']['calmar']:+.3f} "
                f"(rule {result['rule']['calmar']:+.3f}), {result['seconds']:.0f} s",
                flush=True,
            )
    print(f"\nprofile {args.profile}, {len(results)} runs, {time.monotonic() - started:.0f} s this call\n")
    print(table(results))


if __name__ == "__main__":
    main()
