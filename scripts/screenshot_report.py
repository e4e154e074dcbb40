#!/usr/bin/env python3
"""Screenshot the walk-forward HTML report with headless Chromium (works offline).

Usage
-----
    python scripts/screenshot_report.py [REPORT_HTML] [OUT_PNG] [--window-size W,H]

Defaults: ``step3_out/allocator/backtest/report.html`` and
``step3_out/allocator/backtest/report.screenshot.png`` under ``$ALLOCATOR_HOME`` (or the current
directory when unset). Chromium is ``$CHROMIUM`` when set, else ``/usr/bin/chromium``, then
``chromium`` / ``chromium-browser`` on PATH (Debian: ``apt-get install -y chromium``). Each run
uses a fresh, throw-away profile directory and switches off every background network feature,
so nothing is fetched.

Exit codes: 0 on success, 2 when Chromium or the report is missing, 1 when Chromium failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BACKTEST_DIR = Path("step3_out") / "allocator" / "backtest"
INSTALL_HINT = (
    "Headless Chromium is needed for the screenshot. On Debian/Ubuntu install it with:\n"
    "    sudo apt-get update && sudo apt-get install -y chromium\n"
    "(or point the CHROMIUM environment variable at a Chromium/Chrome binary)."
)


def _executable(path: str | None) -> bool:
    return bool(path) and Path(path).is_file() and os.access(path, os.X_OK)


def find_chromium() -> tuple[str | None, str]:
    """(path of a Chromium binary or None, where it was looked for).

    ``$CHROMIUM``, when set, is the only candidate (an explicit choice is never silently replaced).
    """
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return (explicit if _executable(explicit) else None), f"CHROMIUM={explicit}"
    candidates = ["/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")]
    for candidate in candidates:
        if _executable(candidate):
            return candidate, candidate
    return None, "/usr/bin/chromium, chromium and chromium-browser on PATH"


def chromium_command(binary: str, report: Path, out: Path, profile: Path, window_size: str) -> list[str]:
    """The headless, offline screenshot command line."""
    return [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={window_size}",
        f"--screenshot={out}",
        report.resolve().as_uri(),
    ]


def screenshot(report: Path, out: Path, window_size: str = "1400,4000", timeout_s: float = 120.0) -> int:
    """Render ``report`` to ``out`` (PNG); returns a process exit code and prints what happened."""
    binary, looked = find_chromium()
    if binary is None:
        print(f"error: no Chromium executable found (looked for {looked}).\n{INSTALL_HINT}", file=sys.stderr)
        return 2
    if not report.is_file():
        print(f"error: report {report} does not exist (build it first: allocator backtest)", file=sys.stderr)
        return 2
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(f".{out.name}.tmp.png")
    tmp_out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        cmd = chromium_command(binary, report, tmp_out, Path(profile), window_size)
        env = {**os.environ, "HOME": profile}  # keep Chromium's caches out of the real home
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, env=env, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            print(f"error: Chromium did not finish within {timeout_s:.0f} s", file=sys.stderr)
            tmp_out.unlink(missing_ok=True)
            return 1
    if done.returncode != 0 or not tmp_out.is_file() or tmp_out.stat().st_size == 0:
        print(f"error: Chromium exited with code {done.returncode} and wrote no screenshot", file=sys.stderr)
        print(done.stderr[-4000:], file=sys.stderr)
        tmp_out.unlink(missing_ok=True)
        return 1
    os.replace(tmp_out, out)
    print(f"wrote {out} ({out.stat().st_size:,} bytes) from {report.resolve()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    home = Path(os.environ.get("ALLOCATOR_HOME") or ".")
    parser = argparse.ArgumentParser(description="Screenshot the allocator's HTML report with headless Chromium.")
    parser.add_argument(
        "report",
        nargs="?",
        type=Path,
        default=home / BACKTEST_DIR / "report.html",
        help="report HTML (default: %(default)s)",
    )
    parser.add_argument(
        "out",
        nargs="?",
        type=Path,
        default=home / BACKTEST_DIR / "report.screenshot.png",
        help="screenshot PNG (default: %(default)s)",
    )
    parser.add_argument("--window-size", default="1400,4000", help="viewport WIDTH,HEIGHT in px (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before giving up (default: %(default)s)")
    args = parser.parse_args(argv)
    return screenshot(args.report, args.out, args.window_size, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
