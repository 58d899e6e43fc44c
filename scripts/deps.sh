#!/usr/bin/env bash
# deps.sh demo|test|list [demo|test]
#
# Installs what `make demo` or `make test` needs and is missing: the one installer that
# the Makefile and .ci/run both call. Each need is a command and the Debian package
# that has it; a command already on PATH is never installed again, so a machine with
# everything needs no network and this prints one line.
#
#   demo  the sandbox instance: debootstrap builds its root file system,
#         systemd-nspawn boots it, nsenter reaches into it, flock and findmnt guard
#         its cache (test/e2e/sandbox: Requirements)
#   test  the demo's, plus shellcheck (make lint), dbus-daemon (the D-Bus client
#         tests), mkfs.xfs, mkfs.ext4, losetup and blkid (the image's storage script),
#         cloud-init (its config merge, for the image's cloud-init drop-in),
#         systemd-analyze (the image's unit), and bash, curl, jq and strace (the
#         chapter's seed script and the benchmark's process counts, test/bench)
#   list  prints the packages a profile needs that are missing, one a line
#
# Missing packages are installed with apt-get (one `apt-get update` first) when this
# runs as root on Debian or Ubuntu. Elsewhere, or not as root, it prints the exact
# packages and the command that installs them, and exits 1. Go (1.26 or later) and
# make must be there already; Packer is built from the Go module proxy into .tools/ by
# `make packer-tools`, not here.
set -euo pipefail
# Administrators' tools (debootstrap, mkfs.*, losetup) live in sbin, which a user's PATH
# may lack: they are there all the same.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

# needs PROFILE: prints "command:package" lines.
needs() {
	local demo=(debootstrap:debootstrap systemd-nspawn:systemd-container
		nsenter:util-linux flock:util-linux findmnt:util-linux)
	case $1 in
	demo) printf '%s\n' "${demo[@]}" ;;
	test)
		printf '%s\n' "${demo[@]}" shellcheck:shellcheck dbus-daemon:dbus-daemon \
			mkfs.xfs:xfsprogs mkfs.ext4:e2fsprogs losetup:mount blkid:util-linux \
			cloud-init:cloud-init systemd-analyze:systemd bash:bash curl:curl jq:jq \
			strace:strace git:git
		;;
	*)
		echo "deps.sh: unknown profile '$1' (want demo or test)" >&2
		exit 2
		;;
	esac
}

# missing PROFILE: prints each package whose command is not on PATH, once, sorted.
missing() {
	local pair
	while IFS= read -r pair; do
		command -v "${pair%%:*}" >/dev/null 2>&1 || printf '%s\n' "${pair#*:}"
	done < <(needs "$1") | sort -u
}

# debian_like: /etc/os-release names Debian or Ubuntu (or a derivative) and apt-get is
# there.
debian_like() {
	command -v apt-get >/dev/null 2>&1 || return 1
	[ -r /etc/os-release ] || return 1
	local id id_like
	# shellcheck source=/dev/null
	id=$(. /etc/os-release && echo "${ID:-}")
	# shellcheck source=/dev/null
	id_like=$(. /etc/os-release && echo "${ID_LIKE:-}")
	case " $id $id_like " in
	*" debian "* | *" ubuntu "*) return 0 ;;
	esac
	return 1
}

main() {
	local profile=${1:-test}
	if [ "$profile" = list ]; then
		missing "${2:-test}"
		return
	fi
	local pkgs=()
	readarray -t pkgs < <(missing "$profile")
	for tool in go make; do
		if ! command -v "$tool" >/dev/null 2>&1; then
			echo "deps.sh: $tool is not on PATH: install it first (Go 1.26 or later from go.dev, make from your distribution)" >&2
			return 1
		fi
	done
	if [ ${#pkgs[@]} -eq 0 ]; then
		echo "deps: everything make $profile needs is installed"
		return
	fi
	if [ "$(id -u)" -ne 0 ] || ! debian_like; then
		{
			echo "deps: make $profile needs these packages, which are missing: ${pkgs[*]}"
			echo "deps: on Debian or Ubuntu, as root:"
			echo "  apt-get update && apt-get install -y --no-install-recommends ${pkgs[*]}"
			if [ "$(id -u)" -ne 0 ]; then
				echo "deps: (not installed here: this is not running as root; make $profile needs root anyway)"
			else
				echo "deps: (not installed here: this is not a Debian-like system with apt-get; install the equivalents)"
			fi
		} >&2
		return 1
	fi
	echo "deps: installing for make $profile: ${pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
	local left=()
	readarray -t left < <(missing "$profile")
	if [ ${#left[@]} -gt 0 ]; then
		echo "deps: still missing after apt-get install: ${left[*]}" >&2
		return 1
	fi
}

main "$@"
