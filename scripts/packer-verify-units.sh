#!/usr/bin/env bash
# Verifies the units the image installs (packer/files/*.service) with systemd-analyze
# verify, on a scratch root rather than this machine's own /etc:
#
#   ROOT/usr/lib/systemd/system   this machine's unit files (sysinit.target,
#                                 multi-user.target, network-online.target, ...), and
#                                 stand-ins for cloud-init's cloud-init.target and
#                                 cloud-final.service (ordering only, ExecStart=/usr/bin/true)
#   ROOT/etc/systemd/system       our units, enabled with systemctl --root as the image
#                                 build enables them, and cloud-init.target wanted by
#                                 multi-user.target as cloud-init's generator does at boot
#   ROOT/usr/local/bin/firstrun   the binary just built (verify checks that ExecStart
#                                 exists and is executable, under --root), and the
#                                 other programs the units run: packer/files'
#                                 firstrun-user-data-check, and a stand-in /bin/sh
#
# Each unit is verified with multi-user.target and cloud-init.target in the same run, so
# systemd builds their start transactions and reports any ordering cycle, twice: with
# cloud-final.service as AL2023's cloud-init 22.2 has it (not ordered after
# multi-user.target) and as cloud-init 24.4 and later have it (After=multi-user.target);
# and a third time with this machine's own cloud-init units when it has them (Debian's
# cloud-init 22.4 orders cloud-final After=multi-user.target).
# Then a negative control: firstrun.service with WantedBy=multi-user.target must be found
# cyclic against the second, or this check would not see the cycle it is for.
#
# Usage: scripts/packer-verify-units.sh [FIRSTRUN_BINARY]   (default bin/firstrun)
# Without systemd-analyze it skips loudly, except under CI (CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-bin/firstrun}
prog=packer-verify-units

if ! command -v systemd-analyze >/dev/null || ! command -v systemctl >/dev/null; then
  if [ "${CI:-}" = true ]; then
    echo "$prog: systemd-analyze is not installed, and CI requires it" >&2
    exit 1
  fi
  echo "SKIPPED: $prog: systemd-analyze is not installed (apt-get install systemd); CI runs it" >&2
  exit 0
fi
if [ ! -x "$bin" ]; then
  echo "$prog: $bin is missing: make build" >&2
  exit 1
fi
units=(packer/files/*.service)
[ -e "${units[0]}" ] || { echo "$prog: no packer/files/*.service" >&2; exit 1; }

hostunits=
for d in /usr/lib/systemd/system /lib/systemd/system; do
  if [ -e "$d/multi-user.target" ]; then hostunits=$d; break; fi
done
[ -n "$hostunits" ] || { echo "$prog: no systemd unit directory with multi-user.target here" >&2; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# mkroot DIR CLOUD_FINAL_AFTER_MULTI_USER: a root with the host's units, the cloud-init
# stand-ins (no, yes) or the host's own cloud-init units (host), and our units installed
# and enabled.
mkroot() {
  local root=$1 after_multi_user=$2 u
  mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system/multi-user.target.wants" \
    "$root/usr/local/bin" "$root/usr/local/libexec" "$root/usr/bin" "$root/bin"
  cp -R "$hostunits" "$root/usr/lib/systemd/system"
  cp "$bin" "$root/usr/local/bin/firstrun"
  install -m 0755 packer/files/firstrun-user-data-check "$root/usr/local/libexec/"
  printf '#!/bin/sh\n' >"$root/usr/bin/true"
  printf '#!/bin/sh\n' >"$root/bin/sh"
  chmod 0755 "$root/usr/bin/true" "$root/bin/sh"

  if [ "$after_multi_user" = host ]; then
    for u in cloud-init-local.service cloud-init.service cloud-config.service cloud-final.service; do
      if [ -e "$root/usr/lib/systemd/system/$u" ]; then systemctl --root="$root" enable --quiet "$u"; fi
    done
  else
    # As canonical/cloud-init systemd/cloud-init.target: ordered after multi-user.target,
    # so that multi-user.target, which wants it, does not wait for it.
    printf '%s\n' '[Unit]' 'Description=Cloud-init target (stand-in)' 'After=multi-user.target' \
      >"$root/usr/lib/systemd/system/cloud-init.target"
    # As canonical/cloud-init systemd/cloud-final.service.tmpl: After=multi-user.target
    # only for the variants that have it (22.2, AL2023's: ubuntu, debian, unknown; 24.4 and
    # later: all, PR 5830).
    {
      printf '%s\n' '[Unit]' 'Description=Cloud-init: Final Stage (stand-in)' \
        'After=network-online.target' 'Wants=network-online.target'
      if [ "$after_multi_user" = yes ]; then echo 'After=multi-user.target'; fi
      printf '%s\n' '[Service]' 'Type=oneshot' 'ExecStart=/usr/bin/true' 'RemainAfterExit=yes' \
        '[Install]' 'WantedBy=cloud-init.target'
    } >"$root/usr/lib/systemd/system/cloud-final.service"
    systemctl --root="$root" enable --quiet cloud-final.service
  fi
  # What cloud-init-generator links at boot when cloud-init is enabled.
  ln -s /usr/lib/systemd/system/cloud-init.target \
    "$root/etc/systemd/system/multi-user.target.wants/cloud-init.target"

  for u in "${units[@]}"; do
    cp "$u" "$root/etc/systemd/system/"
    systemctl --root="$root" enable --quiet "$(basename "$u")"
  done
}

# verify ROOT UNIT: verify UNIT with the two targets; fails on a non-zero exit, on any
# ordering cycle (systemd may break one by deleting a job and still exit 0: that is the
# boot-time coin toss), and on any message that names one of our units.
verify() {
  local root=$1 unit=$2 out rc=0 u
  out=$(systemd-analyze verify --root="$root" multi-user.target cloud-init.target "$unit" 2>&1) || rc=$?
  if grep -q 'ordering cycle' <<<"$out"; then rc=1; fi
  for u in "${units[@]}"; do
    if grep -qF "$(basename "$u")" <<<"$out"; then rc=1; fi
  done
  if [ "$rc" != 0 ]; then
    printf '%s\n' "$out" >&2
    return 1
  fi
}

failed=0
variants=(no yes)
if [ -e "$hostunits/cloud-final.service" ] && [ -e "$hostunits/cloud-init.target" ]; then
  variants+=(host)
fi
for variant in "${variants[@]}"; do
  root=$scratch/cloud-final-after-multi-user-$variant
  mkroot "$root" "$variant"
  for u in "${units[@]}"; do
    name=$(basename "$u")
    if verify "$root" "$name"; then
      echo "$prog: $name ok (cloud-final.service After=multi-user.target: $variant)"
    else
      echo "$prog: $name FAILED (cloud-final.service After=multi-user.target: $variant)" >&2
      failed=1
    fi
  done
done

# The negative control.
root=$scratch/control
mkroot "$root" yes
systemctl --root="$root" disable --quiet firstrun.service
sed -i 's/^WantedBy=.*/WantedBy=multi-user.target/' "$root/etc/systemd/system/firstrun.service"
systemctl --root="$root" enable --quiet firstrun.service
out=$(systemd-analyze verify --root="$root" multi-user.target cloud-init.target firstrun.service 2>&1) || true
if ! grep -q 'ordering cycle' <<<"$out"; then
  echo "$prog: the control (WantedBy=multi-user.target) was not found cyclic: this check cannot see the cycle" >&2
  printf '%s\n' "$out" >&2
  failed=1
else
  echo "$prog: control ok (WantedBy=multi-user.target would be an ordering cycle)"
fi
exit "$failed"
