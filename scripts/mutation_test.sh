#!/usr/bin/env bash
# Mutation testing of the verdict's critical modules with mutmut (run by hand, not in CI).
#
#   scripts/mutation_test.sh MODULE [MODULE ...]      e.g. scripts/mutation_test.sh bootstrap metrics
#   scripts/mutation_test.sh all
#
# MODULE is one of: labels, plan, checks, policy, envelope, path, backtest, metrics, bootstrap,
# gates, monotonic, overfitting. Each runs in a throw-away copy of the committed tree (git archive
# HEAD) under ${MUTATION_DIR:-/tmp}, so no mutmut cache or mutants/ folder lands in the repository;
# uncommitted changes are not tested. Needs mutmut 3 in the venv
# (.venv/bin/pip install -c constraints.txt 'mutmut==3.8.1'). Prints, per module, mutmut's result
# counts and the score: killed / all mutants, timeouts counted as killed and a mutant that no
# selected test runs ("no tests") counted as survived; the survivors are listed (inspect one with
# `mutmut show NAME` in the printed work folder). One worker by default (MUTATION_WORKERS).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$repo/.venv}
workers=${MUTATION_WORKERS:-1}

declare -A SOURCE=(
  [labels]=allocator_pipeline/core/labels/utility.py
  [plan]=allocator_pipeline/core/folds/plan.py
  [checks]=allocator_pipeline/core/folds/checks.py
  [policy]=allocator_pipeline/core/allocation/policy.py
  [envelope]=allocator_pipeline/core/allocation/envelope.py
  [path]=allocator_pipeline/core/allocation/path.py
  [backtest]=allocator_pipeline/core/evaluation/backtest.py
  [metrics]=allocator_pipeline/core/evaluation/metrics.py
  [bootstrap]=allocator_pipeline/core/evaluation/bootstrap.py
  [gates]=allocator_pipeline/core/evaluation/gates.py
  [monotonic]=allocator_pipeline/core/evaluation/monotonic.py
  [overfitting]=allocator_pipeline/core/evaluation/overfitting.py
)
# the test files that exercise each module; checks runs its own fast file only (test_folds.py's
# property and calendar tests took ~15 s per surviving mutant, too slow to measure all 768)
declare -A TESTS=(
  [labels]="allocator_pipeline_tests/test_labels.py"
  [plan]="allocator_pipeline_tests/test_fold_plan.py allocator_pipeline_tests/test_folds.py"
  [checks]="allocator_pipeline_tests/test_fold_checks.py"
  [policy]="allocator_pipeline_tests/test_policy.py allocator_pipeline_tests/test_evaluation.py allocator_pipeline_tests/test_gate_power.py"
  [envelope]="allocator_pipeline_tests/test_envelope.py"
  [path]="allocator_pipeline_tests/test_path.py allocator_pipeline_tests/test_policy.py allocator_pipeline_tests/test_envelope.py allocator_pipeline_tests/test_verdict_evidence.py"
  [backtest]="allocator_pipeline_tests/test_backtest.py allocator_pipeline_tests/test_envelope.py allocator_pipeline_tests/test_metrics.py allocator_pipeline_tests/test_monitor.py allocator_pipeline_tests/test_gate_power.py"
  [metrics]="allocator_pipeline_tests/test_metrics.py"
  [bootstrap]="allocator_pipeline_tests/test_bootstrap.py allocator_pipeline_tests/test_bootstrap_reference.py allocator_pipeline_tests/test_verdict_evidence.py"
  [gates]="allocator_pipeline_tests/test_gates.py allocator_pipeline_tests/test_gate_power.py"
  [monotonic]="allocator_pipeline_tests/test_monotonic.py allocator_pipeline_tests/test_gates.py allocator_pipeline_tests/test_gate_power.py"
  [overfitting]="allocator_pipeline_tests/test_overfitting.py allocator_pipeline_tests/test_verdict_evidence.py allocator_pipeline_tests/test_gate_power.py"
)

if [[ $# -eq 0 ]]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
modules=("$@")
if [[ ${modules[0]} == all ]]; then
  modules=(labels plan checks policy envelope path backtest metrics bootstrap gates monotonic overfitting)
fi
"$venv/bin/python" -c "import importlib.metadata as m; m.version('mutmut')" >/dev/null 2>&1 || {
  echo "mutmut is not installed in $venv: $venv/bin/pip install -c constraints.txt 'mutmut==3.8.1'" >&2
  exit 1
}

for module in "${modules[@]}"; do
  source_file=${SOURCE[$module]:-}
  [[ -n $source_file ]] || { echo "unknown module $module; known: ${!SOURCE[*]}" >&2; exit 2; }
  work=$(mktemp -d "${MUTATION_DIR:-/tmp}/mutation-$module-XXXXXX")
  git -C "$repo" archive HEAD | tar -x -C "$work"
  {
    echo "[mutmut]"
    echo "source_paths = allocator_pipeline"
    echo "only_mutate = $source_file"
    echo "also_copy ="
    echo "    allocator_pipeline_tests"
    echo "    pyproject.toml"
    echo "pytest_add_cli_args_test_selection ="
    for t in ${TESTS[$module]}; do echo "    $t"; done
  } >"$work/setup.cfg"
  # mutmut reads [tool.mutmut] of pyproject.toml before setup.cfg: the project has none
  echo "== $module: $source_file against ${TESTS[$module]} (work folder $work)"
  start=$(date +%s)
  (cd "$work" && nice "$venv/bin/mutmut" run --max-children "$workers" >"$work/run.log" 2>&1) || true
  (cd "$work" && "$venv/bin/mutmut" results --all true >"$work/results.txt" 2>&1) || true
  killed=$(grep -c ': killed$' "$work/results.txt" || true)
  timeout=$(grep -c ': timeout$' "$work/results.txt" || true)
  survived=$(grep -c ': survived$' "$work/results.txt" || true)
  untested=$(grep -c ': no tests$' "$work/results.txt" || true)
  # anything else (suspicious, segfault, not checked, ...) is not a kill either: shown, and counted against
  other=$(grep -E ': [a-z ]+$' "$work/results.txt" | grep -Evc ': (killed|timeout|survived|no tests)$' || true)
  total=$((killed + timeout + survived + untested + other))
  score=$(python3 -c "print(f'{100 * ($killed + $timeout) / $total:.1f}%' if $total else 'n/a')")
  echo "   mutants $total: killed $killed, timeout $timeout, survived $survived, no tests $untested, other $other;" \
    "score $score; $(($(date +%s) - start)) s"
  grep -E ': [a-z ]+$' "$work/results.txt" | grep -Ev ': (killed|timeout)$' | sed 's/^ */   not killed: /' || true
done
