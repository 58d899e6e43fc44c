#!/usr/bin/env bash
# storage.sh: the extra EBS volume for Docker (the chapter's scripts/storage.sh), made
# safe to run twice: format it once, label it, mount it at /var/lib/docker through an
# fstab line by label with nofail (an instance launched without the volume still boots,
# with Docker on the root volume), and mount it now.
#
# Environment (all optional):
#   ROOT                      prefix of every path edited and of the mount point ("")
#   DOCKER_VOLUME_DEVICE      the volume (/dev/xvdcz); a symlink is resolved
#   DOCKER_VOLUME_LABEL       file system label (docker-data; xfs allows 12 characters)
#   DOCKER_VOLUME_MOUNTPOINT  where it is mounted (/var/lib/docker)
#   DOCKER_VOLUME_FSTYPE      file system type (xfs, as the ECS-optimized AMI's root)
#
# Device naming. On Nitro instances EBS volumes are NVMe devices (/dev/nvme1n1, ...)
# numbered in the order they answer at boot, not the block device mapping's name.
# Amazon Linux's amazon-ec2-utils udev rule (70-ec2-nvme-devices.rules: ebsnvme-id -u
# reads the mapping name from the NVMe controller's vendor data) links that name to the
# NVMe device, so /dev/xvdcz is a symlink to /dev/nvme1n1 there and the real device on
# Xen instances (Amazon EBS user guide, "Map Amazon EBS volumes to NVMe device names").
# The device is used through its resolved name, after waiting for udev once if it is
# not there yet; /dev/nvme1n1 or /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol...
# can be given instead. The fstab line names the label, so the NVMe numbering never
# matters at boot.
#
# Never reformats: mkfs runs only on a device where blkid finds no signature at all; a
# device holding another file system, another label or a partition table is an error.
set -euo pipefail

readonly prog=storage.sh
root=${ROOT:-}
root=${root%/}
device=${DOCKER_VOLUME_DEVICE:-/dev/xvdcz}
label=${DOCKER_VOLUME_LABEL:-docker-data}
mountpoint=${DOCKER_VOLUME_MOUNTPOINT:-/var/lib/docker}
fstype=${DOCKER_VOLUME_FSTYPE:-xfs}

log() { printf '%s: %s\n' "$prog" "$*"; }
die() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 1
}

# live: this is the running system (no ROOT) and systemd manages it.
live=false
if [[ -z $root && -d /run/systemd/system ]]; then
	live=true
fi

# --- check everything before changing anything ---------------------------------------

[[ $label =~ ^[A-Za-z0-9._-]+$ ]] || die "DOCKER_VOLUME_LABEL '$label': only letters, digits, '.', '_' and '-'"
case $fstype in
xfs) ((${#label} <= 12)) || die "DOCKER_VOLUME_LABEL '$label': xfs labels have at most 12 characters" ;;
ext2 | ext3 | ext4) ((${#label} <= 16)) || die "DOCKER_VOLUME_LABEL '$label': ext labels have at most 16 characters" ;;
*) die "DOCKER_VOLUME_FSTYPE '$fstype': use xfs or ext4" ;;
esac
[[ $mountpoint =~ ^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$ && $mountpoint != *//* ]] ||
	die "DOCKER_VOLUME_MOUNTPOINT '$mountpoint': an absolute path other than /, no spaces"
command -v "mkfs.$fstype" >/dev/null || die "mkfs.$fstype not found"

target=$root$mountpoint
fstab=$root/etc/fstab

# The device, its symlinks resolved; udev may still be creating the NVMe link.
if [[ ! -e $device ]] && command -v udevadm >/dev/null; then
	log "$device does not exist yet: waiting for udev"
	# settle fails after its timeout with events still queued: the check below decides.
	udevadm settle --timeout=30 || true
fi
[[ -e $device ]] || die "$device does not exist: is the volume attached (block device mapping $device)? On Nitro instances Amazon Linux's udev rule links it to its /dev/nvme*n1 device; set DOCKER_VOLUME_DEVICE to that device otherwise"
dev=$(readlink -f -- "$device")
[[ -b $dev ]] || die "$device ($dev) is not a block device"
if [[ $dev != "$device" ]]; then
	log "$device is $dev"
fi

# Mounted somewhere else (the root volume, say): not ours to touch.
while IFS= read -r where; do
	[[ -z $where || $where == "$target" ]] || die "$dev is mounted at $where"
done < <(findmnt -rn -S "$dev" -o TARGET || true) # findmnt exits 1 when it finds nothing

# What is on it. blkid -p probes the device itself; exit status 2 means nothing found.
probe_rc=0
probe=$(blkid -p -o export -- "$dev") || probe_rc=$?
case $probe_rc in
0 | 2) ;;
8) die "$dev carries several conflicting signatures (blkid: ambivalent probing result): refusing to touch it" ;;
*) die "blkid $dev failed (exit status $probe_rc)" ;;
esac
have_type=$(sed -n 's/^TYPE=//p' <<<"$probe")
have_label=$(sed -n 's/^LABEL=//p' <<<"$probe")
have_pttype=$(sed -n 's/^PTTYPE=//p' <<<"$probe")
[[ -z $have_pttype ]] || die "$dev holds a $have_pttype partition table: refusing to format it"
fresh=false
if [[ -z $have_type ]]; then
	fresh=true
elif [[ $have_type != "$fstype" ]]; then
	die "$dev already holds a $have_type file system (label '$have_label'), not $fstype: refusing to reformat it"
elif [[ $have_label != "$label" ]]; then
	die "$dev already holds a $fstype file system labelled '$have_label', not '$label': refusing to relabel or reformat it"
fi

# What is mounted at the mount point now.
mounted_src=$(findmnt -rn -M "$target" -o SOURCE || true) # exit 1: nothing mounted there
if [[ -n $mounted_src && $(readlink -f -- "$mounted_src") != "$dev" ]]; then
	die "$target already has $mounted_src mounted on it"
fi

# The fstab line: by label, nofail so that a missing volume does not stop the boot (and
# does not hold docker up for more than 30 s: systemd orders the mount before
# docker.service); xfs is not fsck'ed at boot (fsck.xfs does nothing).
pass=2
if [[ $fstype == xfs ]]; then
	pass=0
fi
opts=defaults,noatime,nofail,x-systemd.device-timeout=30s,x-systemd.before=docker.service
want_line=$(printf 'LABEL=%s\t%s\t%s\t%s\t0\t%s' "$label" "$mountpoint" "$fstype" "$opts" "$pass")

# Lines already there: ours (same label), or another file system at our mount point.
own_lines=0
if [[ -f $fstab ]]; then
	conflict=$(awk -v spec="LABEL=$label" -v mp="$mountpoint" \
		'$1 !~ /^#/ && NF >= 2 && $2 == mp && $1 != spec { print; exit }' "$fstab")
	[[ -z $conflict ]] || die "$fstab already mounts something else at $mountpoint: $conflict"
	own_lines=$(awk -v spec="LABEL=$label" '$1 == spec { n++ } END { print n + 0 }' "$fstab")
	((own_lines <= 1)) || die "$fstab has $own_lines lines for LABEL=$label: fix it by hand"
fi

# --- act ------------------------------------------------------------------------------

# Units that use the mount point, stopped while it changes under them and started again
# after (cleanup.sh disables them at the end of the build).
stopped=()
stop_users() {
	local unit
	$live || return 0
	for unit in ecs.service docker.socket docker.service containerd.service; do
		if systemctl is-active --quiet "$unit"; then
			log "stopping $unit while $mountpoint changes"
			systemctl stop "$unit"
			stopped+=("$unit")
		fi
	done
}
restart_users() {
	local i
	for ((i = ${#stopped[@]} - 1; i >= 0; i--)); do
		log "starting ${stopped[i]} again"
		systemctl start "${stopped[i]}"
	done
}

if $fresh; then
	log "formatting $dev as $fstype, label $label"
	mkfs -t "$fstype" -L "$label" "$dev"
else
	log "$dev already holds $fstype labelled $label: not formatting"
fi

mkdir -p -- "$target"
if [[ -z $mounted_src ]]; then
	stop_users
	# What a fresh volume would hide at the mount point moves onto it (the ECS AMI's
	# docker may have loaded images there already).
	if $fresh && [[ -n $(find "$target" -mindepth 1 -maxdepth 1 -print -quit) ]]; then
		[[ -z $(findmnt -rn -o TARGET | awk -v p="$target/" 'index($0, p) == 1') ]] ||
			die "file systems are mounted below $target: stop what uses them first"
		staging=$(mktemp -d)
		# On a failure below: unmount (which fails when the mount did not happen) and go.
		trap 'umount "$staging" 2>/dev/null || true; rmdir "$staging" || true' EXIT
		mount -t "$fstype" "$dev" "$staging"
		log "moving the existing content of $target onto the new file system"
		cp -a -- "$target/." "$staging/"
		umount "$staging"
		rmdir "$staging"
		trap - EXIT
		find "$target" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system -- {} +
	fi
fi

# fstab: written once; our line rewritten in place only if it says something else.
fstab_changed=false
if [[ -f $fstab ]] && grep -qxF -- "$want_line" "$fstab"; then
	log "$fstab already mounts LABEL=$label at $mountpoint"
else
	mkdir -p -- "$(dirname -- "$fstab")"
	new=$(mktemp "$fstab.XXXXXX")
	if [[ -f $fstab ]]; then
		chmod --reference="$fstab" -- "$new"
		chown --reference="$fstab" -- "$new"
	else
		chmod 0644 -- "$new"
	fi
	if ((own_lines == 1)); then
		log "$fstab: replacing the line for LABEL=$label with: $want_line"
		awk -v spec="LABEL=$label" -v line="$want_line" '$1 == spec { print line; next } { print }' "$fstab" >"$new"
	else
		log "$fstab: adding: $want_line"
		if [[ -f $fstab ]]; then
			cat -- "$fstab" >"$new"
			if [[ -s $fstab && $(tail -c 1 -- "$fstab") != "" ]]; then
				echo >>"$new" # the last line had no newline
			fi
		fi
		printf '%s\n' "$want_line" >>"$new"
	fi
	mv -f -- "$new" "$fstab"
	fstab_changed=true
fi
if $live && $fstab_changed; then
	systemctl daemon-reload # the fstab generator makes the .mount unit from the new line
fi

# Mount that one entry, through fstab, as the next boot will.
if [[ -n $mounted_src ]]; then
	log "$dev is already mounted at $target"
else
	log "mounting $target"
	if [[ -n $root ]]; then
		mount --fstab "$fstab" --target-prefix "$root" "$mountpoint"
	else
		mount --fstab "$fstab" "$mountpoint"
	fi
	now=$(findmnt -rn -M "$target" -o SOURCE || true) # exit 1: nothing mounted
	[[ -n $now && $(readlink -f -- "$now") == "$dev" ]] || die "$target: mounted '$now', not $dev"
	restart_users
fi
log "done: $dev ($fstype, LABEL=$label) on $target"
