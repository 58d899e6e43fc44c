#!/usr/bin/env bash
# ecs-unit.sh: the image's ecs.service is the ecs-init package's
# (/usr/lib/systemd/system/ecs.service) without its After=cloud-final.service, written
# to /etc/systemd/system/ecs.service, which systemd reads instead.
#
# Why. The stock unit waits for cloud-final on purpose: ecs is enabled at boot there,
# and user data must write ecs.config first. In this image ecs is disabled
# (cleanup.sh) and only firstrun starts it, once it has written ecs.config, so the
# ordering protects nothing; it would only hold the agent back until all of user data
# has run, however long that takes (aws/amazon-ecs-agent issues 4130, 4792, 4824), and
# deadlock a blocking `systemctl start ecs` from user data (issues 1707, 4818).
# firstrun-early.service starts ecs while user data runs when nothing in it can change
# the agent's settings; otherwise firstrun.service starts it after cloud-final, as
# before. A drop-in cannot do this: ordering dependencies cannot be reset by one
# (systemd.unit(5)).
#
# The copy is made from the installed package's unit at build time, so it keeps every
# other line of the version the image ships; a later ecs-init package update would not
# reach it (AL2023 ECS images are replaced, not updated, and `make ami` rebuilds it).
# A unit without the line is an error: the package changed, look before building.
#
# Environment (optional): ROOT, prefix of every path (""). A second run changes nothing.
set -euo pipefail

readonly prog=ecs-unit.sh
root=${ROOT:-}
root=${root%/}
src=$root/usr/lib/systemd/system/ecs.service
dst=$root/etc/systemd/system/ecs.service

log() { printf '%s: %s\n' "$prog" "$*"; }
die() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 1
}

[[ -f $src ]] || die "${src#"$root"} not found: the ecs-init package is not installed"
grep -qx 'After=cloud-final.service' "$src" || die "${src#"$root"} has no line After=cloud-final.service: the package changed; check its ordering before building"
want=$(
	printf '%s\n' "# Written by the image build (packer/scripts/ecs-unit.sh): ${src#"$root"} without" \
		"# After=cloud-final.service; firstrun starts ecs once ecs.config is written. README.md," \
		'# "From user data or cfn-init".'
	grep -vx 'After=cloud-final.service' "$src"
)
if [[ -f $dst && $(<"$dst") == "$want" ]]; then
	log "${dst#"$root"} is already the package's unit without After=cloud-final.service"
else
	log "writing ${dst#"$root"}: the package's unit without After=cloud-final.service"
	mkdir -p -- "${dst%/*}"
	printf '%s\n' "$want" >"$dst.tmp"
	chmod 0644 -- "$dst.tmp"
	mv -f -- "$dst.tmp" "$dst"
	# On the running build instance, systemd reads it now (cleanup.sh stops ecs next).
	if [[ -z $root && -d /run/systemd/system ]]; then
		systemctl daemon-reload
	fi
fi
log "done"
