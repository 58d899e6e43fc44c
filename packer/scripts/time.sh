#!/usr/bin/env bash
# time.sh: the time zone and the Amazon Time Sync Service (the chapter's scripts/time.sh),
# made safe to run twice.
#
# Environment (all optional):
#   ROOT      prefix of every path edited ("")
#   TIMEZONE  a zone under /usr/share/zoneinfo (UTC), e.g. US/Eastern as in the chapter
#
# Time zone: /etc/localtime as a symlink to ../usr/share/zoneinfo/ZONE, which is what
# timedatectl writes; timedatectl itself needs a running systemd, the link works in a
# chroot or an image root too. The chapter also wrote ZONE= into /etc/sysconfig/clock:
# that file is Amazon Linux 1's (SysV init); systemd reads only /etc/localtime.
#
# Time source: the chapter added "server 169.254.169.123 prefer iburst" to
# /etc/ntp.conf and turned ntpd on with chkconfig: that is Amazon Linux 1. Amazon Linux
# 2 and 2023 run chronyd, and the AWS docs' line for it is
#   server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4
# (EC2 user guide, "Set the time reference on your EC2 instance to use the local Amazon
# Time Sync Service"). AL2023 already uses it: its /etc/chrony.conf has
# "sourcedir /etc/chrony.d" and amazon-chrony-config ships
# /etc/chrony.d/link-local.sources with that line (the same guide: AL2023 is configured
# for the IPv4 endpoint by default; amazonlinux/amazon-linux-2023 issue 219 shows the
# chrony.conf). So the line is added only where no active server or pool line for
# 169.254.169.123 exists in chrony.conf or in the chrony.d files it reads: as
# /etc/chrony.d/amazon-time-sync.sources when chrony.conf reads .sources files from
# /etc/chrony.d, else into chrony.conf before its first server or pool line.
#
# Checks everything first: a TIMEZONE that is not a zone file, or no chrony.conf, is an
# error before anything is changed.
set -euo pipefail

readonly prog=time.sh
readonly tss_line='server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4'
root=${ROOT:-}
root=${root%/}
timezone=${TIMEZONE:-UTC}

log() { printf '%s: %s\n' "$prog" "$*"; }
die() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 1
}

live=false
if [[ -z $root && -d /run/systemd/system ]]; then
	live=true
fi

zoneinfo=$root/usr/share/zoneinfo
localtime=$root/etc/localtime
chrony_conf=$root/etc/chrony.conf
chrony_d=$root/etc/chrony.d

# --- check ----------------------------------------------------------------------------

# A zone is a relative path of a compiled zone file (TZif), never a way out of zoneinfo.
[[ $timezone =~ ^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*(/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)*$ ]] ||
	die "TIMEZONE '$timezone' is not a zone name like UTC or US/Eastern"
zonefile=$zoneinfo/$timezone
[[ -f $zonefile ]] || die "TIMEZONE '$timezone': no such zone in $zoneinfo"
[[ $(head -c 4 -- "$zonefile") == TZif ]] || die "TIMEZONE '$timezone': $zonefile is not a zone file"
[[ -f $chrony_conf ]] || die "$chrony_conf not found: chrony is not installed"

# active_tss FILE: true when FILE has an uncommented server/pool line for the service.
active_tss() {
	grep -Eiq '^[[:space:]]*(server|pool)[[:space:]]+169\.254\.169\.123([[:space:]]|$)' -- "$1"
}
# reads_dir DIRECTIVE: true when chrony.conf has "DIRECTIVE /etc/chrony.d" uncommented.
reads_dir() {
	grep -Eiq "^[[:space:]]*$1[[:space:]]+/etc/chrony\.d/?[[:space:]]*$" -- "$chrony_conf"
}

tss_in=
if active_tss "$chrony_conf"; then
	tss_in=$chrony_conf
fi
if [[ -z $tss_in && -d $chrony_d ]]; then
	shopt -s nullglob
	candidates=()
	if reads_dir sourcedir; then
		candidates+=("$chrony_d"/*.sources)
	fi
	if reads_dir confdir; then
		candidates+=("$chrony_d"/*.conf)
	fi
	shopt -u nullglob
	for f in "${candidates[@]}"; do
		if active_tss "$f"; then
			tss_in=$f
			break
		fi
	done
fi

# --- time zone ------------------------------------------------------------------------

link_target=../usr/share/zoneinfo/$timezone
if [[ -L $localtime && $(readlink -- "$localtime") == "$link_target" ]]; then
	log "time zone already $timezone ($localtime -> $link_target)"
else
	log "time zone $timezone: $localtime -> $link_target"
	mkdir -p -- "$(dirname -- "$localtime")"
	tmp_link=$localtime.firstrun-new
	ln -sfn -- "$link_target" "$tmp_link"
	mv -Tf -- "$tmp_link" "$localtime" # replaces a file or an old link in one rename
fi

# --- chrony ---------------------------------------------------------------------------

chrony_changed=false
if [[ -n $tss_in ]]; then
	log "chrony already uses the Amazon Time Sync Service (${tss_in#"$root"})"
elif reads_dir sourcedir; then
	sources=$chrony_d/amazon-time-sync.sources
	log "adding the Amazon Time Sync Service as ${sources#"$root"}"
	mkdir -p -- "$chrony_d"
	new=$(mktemp "$sources.XXXXXX")
	chmod 0644 -- "$new"
	printf '# Amazon Time Sync Service, link-local (written by the image build: time.sh)\n%s\n' "$tss_line" >"$new"
	mv -f -- "$new" "$sources"
	chrony_changed=true
else
	log "adding the Amazon Time Sync Service to ${chrony_conf#"$root"}"
	new=$(mktemp "$chrony_conf.XXXXXX")
	chmod --reference="$chrony_conf" -- "$new"
	chown --reference="$chrony_conf" -- "$new"
	# Before the first server or pool line (the AWS docs' advice), else at the end.
	awk -v line="$tss_line" '
		!done && tolower($1) ~ /^(server|pool)$/ { print line; done = 1 }
		{ print }
		END { if (!done) print line }
	' "$chrony_conf" >"$new"
	mv -f -- "$new" "$chrony_conf"
	chrony_changed=true
fi

# chronyd starts at boot (AL2023 enables it already); a running one rereads its sources.
unit=chronyd.service
if $live; then
	if systemctl cat "$unit" >/dev/null 2>&1; then
		if ! systemctl is-enabled --quiet "$unit"; then
			log "enabling $unit"
			systemctl enable "$unit"
		fi
		if $chrony_changed && systemctl is-active --quiet "$unit"; then
			log "restarting $unit for its new source"
			systemctl restart "$unit"
		fi
	else
		log "warning: $unit is not installed"
	fi
elif [[ -n $(systemctl --root="${root:-/}" list-unit-files --no-legend "$unit" 2>/dev/null) ]]; then
	if [[ $(systemctl --root="${root:-/}" is-enabled "$unit" 2>/dev/null) != enabled ]]; then
		log "enabling $unit"
		systemctl --root="${root:-/}" enable "$unit"
	fi
else
	log "$unit is not installed under ${root:-/}: not enabling it"
fi
log "done"
