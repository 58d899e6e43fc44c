#!/usr/bin/env bash
# Runs shellcheck on every shell script of the repository. Without shellcheck it skips
# loudly, except under CI (CI=true), where .ci/run must have installed it.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t scripts < <(git ls-files '*.sh' .ci/run packer/files/firstrun-user-data-check 2>/dev/null || find . -name '*.sh' -o -path ./.ci/run -o -path ./packer/files/firstrun-user-data-check)
if ! command -v shellcheck >/dev/null; then
  if [ "${CI:-}" = true ]; then
    echo "shellcheck: not installed, and CI requires it" >&2
    exit 1
  fi
  echo "SKIPPED: shellcheck is not installed (apt-get install shellcheck); CI runs it" >&2
  exit 0
fi
shellcheck "${scripts[@]}"
echo "shellcheck: ${#scripts[@]} scripts clean"
