#!/usr/bin/env bash
# Summarises the output of `firstrun --check --output json` collected from many
# instances (for example by SSM Run Command, see the README's "Fleet sweep"): which
# instances fail which check.
#
# Usage: examples/fleet-check-summary.sh FILE|DIR...
#   A FILE holds one instance's report; the instance id is the first path component
#   that looks like one (i-0123…, as in SSM's S3 output PREFIX/COMMAND/INSTANCE/…/stdout),
#   else the file's name without .json. A DIR is searched for *.json and stdout files.
# Exit status: 0 when every report holds, 1 when a check fails, a report is unreadable
# or there is none, 2 on a usage error. Needs bash, jq and awk.
set -euo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 FILE|DIR..." >&2
  exit 2
fi
if ! command -v jq >/dev/null; then
  echo "$0: jq is required (dnf install jq, apt-get install jq)" >&2
  exit 2
fi

# instance_of PATH prints the instance id PATH belongs to.
instance_of() {
  local part
  local -a parts
  IFS=/ read -r -a parts <<<"$1"
  for part in "${parts[@]}"; do
    if [[ $part =~ ^m?i-[0-9a-f]{8,17}(\.json)?$ ]]; then
      echo "${part%.json}"
      return
    fi
  done
  part=$(basename "$1")
  echo "${part%.json}"
}

files=()
for arg in "$@"; do
  if [ -d "$arg" ]; then
    while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$arg" -type f \( -name '*.json' -o -name stdout \) -print0 | sort -z)
  elif [ -f "$arg" ]; then
    files+=("$arg")
  else
    echo "$0: $arg: no such file or directory" >&2
    exit 2
  fi
done

if [ ${#files[@]} -eq 0 ]; then
  echo "$0: no report (*.json or stdout file) in $*" >&2
  exit 1
fi

total=0 healthy=0 failing=0 unreadable=0
rows=""
for f in "${files[@]}"; do
  id=$(instance_of "$f")
  total=$((total + 1))
  # One line a failed check: INSTANCE<TAB>CHECK<TAB>DETAIL; "ok" alone when all hold.
  if ! out=$(jq -er --arg id "$id" '
      if type == "object" and (.checks | type) == "array" and (.ok | type) == "boolean" then
        ([.checks[] | select(.status == "FAIL") | [$id, .name, (.detail // "" | gsub("[\t\n]"; " "))] | @tsv] | if length == 0 then "ok" else .[] end)
      else error("not a report") end' "$f" 2>/dev/null); then
    unreadable=$((unreadable + 1))
    rows+="$id"$'\t'"(no report)"$'\t'"not the output of firstrun --check --output json (did the command run?)"$'\n'
    continue
  fi
  if [ "$out" = ok ]; then
    healthy=$((healthy + 1))
  else
    failing=$((failing + 1))
    rows+="$out"$'\n'
  fi
done

echo "$total instances: $healthy all checks ok, $failing failing, $unreadable without a report"
if [ -n "$rows" ]; then
  echo
  printf 'INSTANCE\tCHECK\tDETAIL\n%s' "$rows" | awk -F'\t' '
    { id[NR] = $1; check[NR] = $2; detail[NR] = $3
      if (length($1) > w1) w1 = length($1); if (length($2) > w2) w2 = length($2) }
    END { for (i = 1; i <= NR; i++) printf("%-" w1 "s  %-" w2 "s  %s\n", id[i], check[i], detail[i]) }'
  echo
  echo "failing checks (instances):"
  printf '%s' "$rows" | cut -f2 | sort | uniq -c | sort -k1,1nr -k2 | sed 's/^ */  /'
  exit 1
fi
