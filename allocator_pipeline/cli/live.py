"""The live commands: rebalance (one session's decision) and replay (a run of daily decisions).

Both read the inputs fresh (validated: exit 2 on bad input, or on a ``--date`` that is not an NYSE
session or lies outside the data) and write inside one publication (nothing stays on failure).
They read the stored models and artifacts directly (``core/allocation/stored.py``), so only the
promoted allocator's daily decision, recorded as a Dagster run of the daily job (the decision and
the live monitor), imports Dagster, and none imports the fitting libraries (a test in
``test_pipeline.py`` checks it).
"""

from __future__ import annotations

import sys

import click

from allocator_pipeline.cli.context import Context, InputError, check_run, echo_step, main

MODEL_HELP = (
    "'promoted' (the promoted allocator after its hand-over), 'folds' (each fold's model on its test "
    "window, as the walk-forward backtest) or 'fold:<KEY>' (the same path, sessions of fold KEY only)."
)


def _session_arg(value: str | None, option: str) -> str | None:
    import pandas as pd

    if value is None:
        return None
    try:
        return str(pd.Timestamp(value).date())
    except ValueError:
        raise InputError(f"{option} must be a date YYYY-MM-DD, got {value!r}") from None


def _live_inputs(ctx: Context):
    """The validated market and leg panels (exit 2 on bad input)."""
    from allocator_pipeline.core.common.errors import InputDataError
    from allocator_pipeline.core.inputs import live_inputs

    try:
        return live_inputs(ctx.settings)
    except InputDataError as exc:
        raise InputError(str(exc)) from None


def decision_line(decision: dict, qqq: str, spy: str) -> str:
    """One decision as a person reads it: the capital in each leg and in cash, the model, its age
    and the drift status, e.g. ``2025-09-26: QQQ 50.0%, SPY 50.0%, cash 0.0% - fold:2025, 204
    sessions old, drift ok`` (``qqq``/``spy``: the configured leg symbols)."""
    exposure = float(decision["exposure"])
    legs = (
        f"{qqq} {float(decision['w_qqq']) * exposure:.1%}, {spy} {float(decision['w_spy']) * exposure:.1%}, "
        f"cash {float(decision['cash']):.1%}"
    )
    drift = (decision.get("envelope") or {}).get("drift_status", "n/a")
    line = f"{decision['session']}: {legs} - {decision['model_id']}, {decision['model_age_sessions']} sessions old, drift {drift}"
    if decision.get("out_of_range"):
        line += ", input out of the training range (baseline weight held)"
    return line


@main.command()
@click.option("--date", "session", help="Session date YYYY-MM-DD (default: the last session in the data).")
@click.option("--model", "model_spec", default="promoted", show_default=True, help=MODEL_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the full decision as JSON instead of one line.")
@click.pass_obj
def rebalance(ctx: Context, session: str | None, model_spec: str, as_json: bool) -> None:
    """The allocation for one session, printed as one line (``--json``: the full decision). 'promoted'
    writes the decision and the log; on the hand-over session it gives the evaluated walk-forward
    path's decision (the promoted model decides from the next session); the walk-forward models
    write nothing."""
    import pandas as pd

    from allocator_pipeline.core.allocation import (
        NoDataForSession,
        NoPromotedAllocator,
        decide,
        load_promoted,
        model_schedule,
    )
    from allocator_pipeline.core.common.errors import InputDataError
    from allocator_pipeline.core.common.sessions import decision_ts_for, session_dates
    from allocator_pipeline.core.common.storage import read_json, to_json_text
    from allocator_pipeline.core.inputs import check_decision_date

    s = ctx.settings
    session = _session_arg(session, "--date")
    note = None
    with ctx.publication():
        _, legs = _live_inputs(ctx)
        if session is None:
            session = str(session_dates(legs.index[-1:])[0].date())
        try:
            check_decision_date(session, legs)
        except InputDataError as exc:
            raise InputError(f"--date {session}: {exc.problem}") from None
        try:
            if model_spec == "promoted":
                schedule, manifest = load_promoted(s)  # a clear error before any run is started
                handover = schedule.initial_state.session if schedule.initial_state is not None else None
                ts = decision_ts_for(pd.Timestamp(session))
                if handover is not None and ts < handover:
                    raise InputError(
                        f"--date {session}: before the promoted allocator's hand-over session "
                        f"{session_dates(pd.DatetimeIndex([handover]))[0].date()}; it decides the sessions after it "
                        "(`--model folds` gives the walk-forward models' decision of an earlier session)"
                    )
                if ts == handover:
                    # the walk-forward path decides the hand-over session (bit for bit as its backtest)
                    decision, _ = decide(model_schedule(s, "folds"), legs, session, s, previous=None)
                    decision["mode"] = "hand-over"
                    note = (
                        f"{session} is the hand-over session: this is the walk-forward path's decision; the promoted "
                        f"allocator {manifest['model_id']} decides from the next session (nothing written)"
                    )
                else:  # the daily job's run, recorded in the Dagster instance: the one branch importing Dagster
                    from allocator_pipeline.defs.allocation import rebalance_run

                    result = rebalance_run(ctx.options, ctx.instance, session, verbose=ctx.verbose)
                    check_run(result, f"rebalance {session}")
                    decision = read_json(s.paths.decisions / f"{session}.json")
            else:
                decision, _ = decide(model_schedule(s, model_spec), legs, session, s, previous=None)
        except (NoDataForSession, NoPromotedAllocator, FileNotFoundError, InputDataError) as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        from allocator_pipeline.core.allocation.live import published

        click.echo(to_json_text({k: v for k, v in published(decision).items() if k != "state"}), nl=False)
        return
    if note is not None:
        click.echo(note)
    click.echo(decision_line(decision, s.data.qqq_symbol, s.data.spy_symbol))


@main.command()
@click.option("--start", "start", required=True, help="First session YYYY-MM-DD.")
@click.option("--end", "end", required=True, help="Last session YYYY-MM-DD.")
@click.option("--model", "model_spec", default="folds", show_default=True, help=MODEL_HELP)
@click.pass_obj
def replay(ctx: Context, start: str, end: str, model_spec: str) -> None:
    """Decide the sessions START..END one by one exactly as the daily job does (data up to each
    session only, the replayed log's own state), write the replayed log, and print the largest
    absolute difference against the walk-forward backtest's w_final and exposure."""
    import pandas as pd
    from tqdm import tqdm

    from allocator_pipeline.core.allocation import DecisionLog, NoPromotedAllocator, max_abs_diff, model_schedule
    from allocator_pipeline.core.allocation import replay as replay_sessions
    from allocator_pipeline.core.common.artifacts import load_artifact
    from allocator_pipeline.core.common.errors import InputDataError
    from allocator_pipeline.core.common.sessions import session_dates
    from allocator_pipeline.core.common.storage import remove

    s = ctx.settings
    first, last = _session_arg(start, "--start"), _session_arg(end, "--end")
    with ctx.publication():
        _, legs = _live_inputs(ctx)
        dates = session_dates(legs.index)
        sessions = legs.index[(dates >= pd.Timestamp(first)) & (dates <= pd.Timestamp(last))]
        if len(sessions) == 0:
            raise InputError(
                f"--start {first} --end {last}: no session of the data in this range; expected dates within "
                f"{dates[0].date()} .. {dates[-1].date()}"
            )
        directory = s.paths.allocator / "replay" / model_spec.replace(":", "_")
        try:
            schedule = model_schedule(s, model_spec)
            remove(directory)  # a replay starts from an empty log
            echo_step(f"replay {model_spec}: {len(sessions)} session(s) {first}..{last}")
            with tqdm(total=len(sessions), desc="replay", unit="session", file=sys.stderr, dynamic_ncols=True) as bar:
                replayed = replay_sessions(
                    schedule, legs, sessions, s, DecisionLog(directory), progress=lambda done, total: bar.update(1)
                )
            backtest = load_artifact(s.home, "allocator_path", columns=["w_final", "exposure"])
        except (NoPromotedAllocator, FileNotFoundError, InputDataError) as exc:
            raise click.ClickException(str(exc)) from None
    diff = max_abs_diff(replayed, backtest)
    click.echo(f"Replayed log: {directory / 'log.parquet'}")
    click.echo("modes: " + ", ".join(f"{mode} {int(n)}" for mode, n in replayed["mode"].value_counts().items()))
    if diff["sessions"]:
        click.echo(
            f"max_abs_diff: w_final {diff['w_final']:.3g}, exposure {diff['exposure']:.3g} "
            f"({diff['sessions']} sessions compared with the walk-forward backtest)"
        )
    else:
        click.echo("max_abs_diff: n/a (no replayed session is in the walk-forward backtest)")
