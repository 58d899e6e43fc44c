#!/usr/bin/env bash
# Shows firstrun's main job on a temporary root that looks like a fresh Amazon Linux
# 2023 ECS instance with the CloudWatch agent installed: a dry run, the real run, the
# files, a rerun that changes nothing, a rerun without the proxy, and bad input that
# is refused with nothing written. Usage: examples/demo.sh [path/to/firstrun]
set -euo pipefail
bin=$(realpath "${1:-bin/firstrun}")
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

mkdir -p "$root/opt/aws/amazon-cloudwatch-agent/bin" "$root/etc/ecs" "$root/etc/firstrun"
touch "$root/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent"
echo "ECS_LOGLEVEL=debug" > "$root/etc/ecs/ecs.config"
cp "$here/firstrun.env" "$root/etc/firstrun/firstrun.env"

step "Inputs: $root/etc/firstrun/firstrun.env (the chapter's)"
grep -v '^#' "$root/etc/firstrun/firstrun.env"

step "firstrun --dry-run: what would change (nothing is written)"
"$bin" --root "$root" --dry-run 2>/dev/null

step "firstrun: configure (logs on stderr, a line per phase and per file)"
"$bin" --root "$root"

step "The files"
(cd "$root" && find . -type f ! -name amazon-cloudwatch-agent -printf '%m %p\n' | sort)
echo "--- /etc/ecs/ecs.config (ECS_LOGLEVEL=debug was the user's and stays)"
cat "$root/etc/ecs/ecs.config"

step "Run again: every file unchanged, nothing touched"
"$bin" --root "$root" 2>&1 | grep -E '"action"|	file	' || true

step "Run again without PROXY_URL: what the proxy wrote is removed"
sed -i '/^PROXY_URL=/d' "$root/etc/firstrun/firstrun.env"
"$bin" --root "$root" 2>&1 | grep -E 'removed|updated' || true
echo "--- /etc/ecs/ecs.config"
cat "$root/etc/ecs/ecs.config"

step "Bad input: every problem at once, exit code 2, nothing written"
set +e
ECS_CLUSTER=$'prod\nECS_ENGINE_AUTH_DATA=x' PROXY_URL='ftp://bob:secret@proxy' "$bin" --root "$root"
code=$?
set -e
echo "exit code: $code"
