#!/usr/bin/env bash
# The regression gate of a CI job: compare a recipe against the saved baseline, or make a new baseline.
#
# Written for `bash -e` (GitHub Actions runs `run:` steps under `bash -e`): every exit code adacli can
# return is captured with `|| rc=$?` before it is tested, so nothing ends the script by accident.
#
#   0 no regression, or a new baseline was made (first run, setup changed, or REFRESH=true)
#   1 regression (the baseline is never replaced by a regressed run)
#   2 bad recipe or bad input (no baseline is ever written from it)
#
# Environment (all optional but RECIPE):
#   RECIPE      the recipe to run
#   BASELINE    the baseline file                       [.adacli/baseline.json]
#   RUN_DIR     the run folder (results.json, report.html) [runs/ci]
#   REPORTS     JUnit XML and Markdown go here          [reports]
#   REFRESH     "true": make a new baseline from this run [false]
#   ADACLI      the command                             [adacli]
#   ADACLI_ARGS extra arguments for `adacli compare`, e.g. "--threads 1"
#   GITHUB_STEP_SUMMARY, GITHUB_OUTPUT  set by GitHub Actions; the Markdown verdict is appended to the
#               first, new_baseline=true|false to the second
set -euo pipefail

: "${RECIPE:?set RECIPE to the recipe file}"
BASELINE="${BASELINE:-.adacli/baseline.json}"
RUN_DIR="${RUN_DIR:-runs/ci}"
REPORTS="${REPORTS:-reports}"
REFRESH="${REFRESH:-false}"
read -r -a adacli <<< "${ADACLI:-adacli}"
read -r -a extra <<< "${ADACLI_ARGS:-}"
summary="${GITHUB_STEP_SUMMARY:-$REPORTS/summary.md}"
output="${GITHUB_OUTPUT:-/dev/null}"
mkdir -p "$REPORTS" "$(dirname "$BASELINE")"

publish() {  # the Markdown verdict into the job summary (and the reports folder)
    if [ -f "$REPORTS/verdict.md" ]; then
        cat "$REPORTS/verdict.md" >> "$summary"
        echo "Full report: \`$RUN_DIR/report.html\` in the run's artifact." >> "$summary"
    fi
}

if [ -f "$BASELINE" ] && [ "$REFRESH" != "true" ]; then
    rc=0
    "${adacli[@]}" compare "$RECIPE" --out "$RUN_DIR" --baseline "$BASELINE" \
        --junit-xml "$REPORTS/gate.xml" --markdown "$REPORTS/verdict.md" "${extra[@]}" || rc=$?
    if [ "$rc" -ne 2 ]; then  # 0 no regression, 1 regression (or a trial that raised): done
        publish
        echo "new_baseline=false" >> "$output"
        exit "$rc"
    fi
    # 2: a baseline from another setup (the recipe changed on purpose), or a bad recipe: the run below
    # makes a new baseline in the first case and fails in the second (exit 2 again, nothing written).
    echo "::warning::baseline refused (see above); making a new one from this run"
fi

# No baseline yet, another setup, or a refresh: run and save the baseline. adacli writes it only when the
# run succeeds; any failure (a bad recipe: 2, a trial that raised: 1) ends the script here under -e.
"${adacli[@]}" compare "$RECIPE" --out "$RUN_DIR" --save-baseline "$BASELINE" \
    --markdown "$REPORTS/verdict.md" "${extra[@]}"
publish
echo "new_baseline=true" >> "$output"
