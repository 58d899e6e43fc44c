#!/usr/bin/env bash
# cleanup.sh: the last provisioner (the chapter's scripts/cleanup.sh). Leaves the image
# as firstrun expects to find it on a new instance: the ECS agent stopped and disabled,
# so that only firstrun starts it once it has written /etc/ecs/ecs.config; Docker left
# enabled, as on the stock ECS AMI, so that it starts at boot beside cloud-init and is
# not on the way to the cluster (firstrun restarts it only when its proxy changes; the
# chapter disabled it too, which put docker's start after firstrun's: README.md,
# "From user data or cfn-init", has the measurements);
# no agent checkpoint (it pins the cluster: DESIGN.md); nothing of the build instance
# (its logs, cloud-init's record of it, firstrun's state, shell histories, SSH host keys
# and authorized keys, its machine ID).
#
# Unlike the chapter's script this one stops at the first failure (set -e): an image
# that still has ecs enabled, or a checkpoint, must not be published. What may be
# missing (units, files) is looked for first, so a second run succeeds and changes
# nothing. The chapter's "stop ecs" and "chkconfig docker off" were Amazon Linux 1
# (upstart, SysV); this is systemctl.
#
# Environment (optional): ROOT, prefix of every path edited (""). With ROOT set, or
# where systemd does not run (a chroot), units are disabled with systemctl --root (their
# wants symlinks removed) and nothing is stopped; on the running build instance they are
# disabled and stopped with systemctl disable --now.
set -euo pipefail

readonly prog=cleanup.sh
root=${ROOT:-}
root=${root%/}

log() { printf '%s: %s\n' "$prog" "$*"; }
die() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 1
}

live=false
if [[ -z $root && -d /run/systemd/system ]]; then
	live=true
fi

# remove PATH...: removes each that exists (a file, a link or a whole directory).
remove() {
	local p
	for p in "$@"; do
		if [[ -e $p || -L $p ]]; then
			log "removing ${p#"$root"}"
			rm -rf --one-file-system -- "$p"
		fi
	done
}

# empty_dir DIR: removes what DIR holds and keeps DIR.
empty_dir() {
	local dir=$1 n
	[[ -d $dir ]] || return 0
	n=$(find "$dir" -mindepth 1 -maxdepth 1 -printf x | wc -c)
	if ((n > 0)); then
		log "emptying ${dir#"$root"} ($n entries)"
		find "$dir" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system -- {} +
	fi
}

# --- services: ecs (docker, its socket and containerd stay as the ECS AMI has them) -----

units=(ecs.service)
if $live; then
	present=()
	for u in "${units[@]}"; do
		if [[ $(systemctl show -P LoadState "$u") == loaded ]]; then
			present+=("$u")
		fi
	done
	if systemctl is-active --quiet ecs.service; then
		log "stopping ecs.service"
		systemctl stop ecs.service
	fi
	# Containers the build left (the agent's, stopped with ecs) go; images stay.
	if systemctl is-active --quiet docker.service && command -v docker >/dev/null &&
		[[ -n $(docker container ls --all --quiet --filter status=exited --filter status=created) ]]; then
		log "removing stopped containers"
		docker container prune --force
	fi
	for u in "${present[@]}"; do
		state=$(systemctl is-enabled "$u" 2>/dev/null || true) # exits 1 when disabled
		case $state in
		enabled | enabled-runtime | linked | linked-runtime | alias)
			log "disabling $u (was $state)"
			systemctl disable --quiet "$u"
			;;
		esac
	done
	for u in "${present[@]}"; do
		if systemctl is-active --quiet "$u"; then
			log "stopping $u"
			systemctl stop "$u"
		fi
	done
	for u in "${present[@]}"; do
		state=$(systemctl is-enabled "$u" 2>/dev/null || true)
		case $state in
		enabled | enabled-runtime | linked | linked-runtime | alias) die "$u is still $state" ;;
		esac
		! systemctl is-active --quiet "$u" || die "$u is still active"
	done
else
	sysroot=${root:-/}
	for u in "${units[@]}"; do
		[[ -n $(systemctl --root="$sysroot" list-unit-files --no-legend "$u" 2>/dev/null) ]] || continue
		if [[ $(systemctl --root="$sysroot" is-enabled "$u" 2>/dev/null || true) == enabled ]]; then
			log "disabling $u under $sysroot"
			systemctl --root="$sysroot" disable --quiet "$u"
		fi
	done
	log "not stopping anything: not the running system"
fi

# --- state that must not be baked ---------------------------------------------------------

# The agent's checkpoint pins the cluster of its first registration; the directory stays.
empty_dir "$root/var/lib/ecs/data"
# firstrun writes the agent's config on the new instance, and keeps its state and
# last-run marker here.
remove "$root/etc/ecs/ecs.config" "$root/var/lib/firstrun"

# cloud-init's record of this instance, so that it runs fresh on the new one (what
# "cloud-init clean" removes, but its seed and scripts directories stay).
remove "$root/var/lib/cloud/instances" "$root/var/lib/cloud/data" "$root/var/lib/cloud/sem"
for p in "$root"/var/lib/cloud/instance*; do
	remove "$p"
done

# Shell histories, and the keys the build logged in with (Packer's temporary key pair,
# which cloud-init would otherwise keep next to the new instance's own key).
for p in "$root"/root/.bash_history "$root"/home/*/.bash_history \
	"$root"/root/.ssh/authorized_keys "$root"/home/*/.ssh/authorized_keys; do
	remove "$p"
done

# SSH host keys: AL2023 makes new ones on the new instance (cloud-init's ssh module once
# per instance, and sshd-keygen@.service for any still missing before sshd starts).
for p in "$root"/etc/ssh/ssh_host_*key "$root"/etc/ssh/ssh_host_*key.pub; do
	remove "$p"
done

# The machine ID: empty, so systemd makes a new one at the next boot. Empty, not
# missing and not "uninitialized": those would make that boot a first boot, which
# applies the unit presets and could enable units again.
machine_id=$root/etc/machine-id
if [[ ! -e $machine_id && -d $root/etc ]]; then
	log "creating an empty ${machine_id#"$root"}"
	: >"$machine_id"
elif [[ -s $machine_id ]]; then
	log "emptying ${machine_id#"$root"}"
	truncate -s 0 -- "$machine_id"
fi
dbus_id=$root/var/lib/dbus/machine-id
if [[ -f $dbus_id && ! -L $dbus_id ]]; then
	remove "$dbus_id" # a copy of the old ID (a link to /etc/machine-id is fine)
fi

# --- logs, last ------------------------------------------------------------------------

empty_dir "$root/var/log/ecs"
remove "$root/var/log/cloud-init.log" "$root/var/log/cloud-init-output.log" "$root/var/log/docker"
# firstrun's own log and metrics of the build's run: shipped from each new instance,
# the build's metrics record would count once an instance.
remove "$root/var/log/firstrun"
if $live && systemctl is-active --quiet systemd-journald.service; then
	log "rotating and vacuuming the journal"
	journalctl --rotate --vacuum-time=1s
else
	empty_dir "$root/var/log/journal"
fi
log "done"
