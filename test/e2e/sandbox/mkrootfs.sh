#!/usr/bin/env bash
# mkrootfs.sh CACHE_DIR
#
# Builds, once, the root file system the end-to-end sandbox boots with systemd-nspawn:
# a Debian bookworm with systemd, D-Bus and docker, provisioned to look like a freshly
# booted, baked Amazon ECS AMI before firstrun runs (docker, ecs and the CloudWatch
# agent installed but disabled, /etc/ecs empty, no agent state). Prints the rootfs path
# on stdout; progress goes to stderr.
#
# The rootfs lives at CACHE_DIR/rootfs-KEY, KEY a hash of this script, so editing the
# script builds a new one (older ones are listed, not removed: a running sandbox may
# still use them). It is built beside its final place and renamed into it, under a lock,
# so concurrent callers wait for one build. The test binaries are not in it: the sandbox
# binds them read-only at /opt/sandbox/bin.
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian). Downloaded
# packages are kept in CACHE_DIR/debs for the next build.
set -euo pipefail

readonly SUITE=bookworm
readonly PACKAGES=systemd,systemd-sysv,dbus,docker.io,iproute2,procps,curl

# The build in progress, removed on exit (global: the EXIT trap runs after main returns).
build_dir=

log() { printf 'mkrootfs: %s\n' "$*" >&2; }

# remove_build DIR: removes an unfinished build, first unmounting what an interrupted
# debootstrap may have left mounted in it (proc, sys), never deleting through a mount.
remove_build() {
	local dir=$1 mnt mounts=()
	readarray -t mounts < <(findmnt -rn -o TARGET | grep -F "$dir/" | sort -r)
	for mnt in "${mounts[@]}"; do
		umount -l "$mnt" || true
	done
	rm -rf --one-file-system "$dir" || log "could not remove $dir"
}

# write_file PATH MODE: writes stdin to PATH, creating its directory.
write_file() {
	install -D -m "$2" /dev/stdin "$1"
}

# provision ROOT: turns a fresh debootstrap tree into the baked-AMI state.
provision() {
	local root=$1

	# docker runs inside nspawn here: the container root is an overlay (no overlay2 on
	# it), and no bridge or iptables rules are needed (nothing is pulled or run; each
	# sandbox has its own loopback-only network namespace).
	write_file "$root/etc/docker/daemon.json" 0644 <<-'EOF'
		{
		  "storage-driver": "vfs",
		  "iptables": false,
		  "ip6tables": false,
		  "bridge": "none"
		}
	EOF

	# The ECS agent, as the real ecs.service (amazon-ecs-agent
	# packaging/amazon-linux-ami-integrated/ecs.service) but with the fake agent as
	# ExecStart and its test knobs in /etc/fakeagent.env.
	write_file "$root/etc/systemd/system/ecs.service" 0644 <<-'EOF'
		# Sandbox stand-in for Amazon Linux's ecs.service: the real unit's ordering,
		# restart policy and docker check; the fake agent instead of ecs-init.
		[Unit]
		Description=Amazon Elastic Container Service - container agent (sandbox fakeagent)
		Documentation=https://aws.amazon.com/documentation/ecs/
		Wants=docker.service
		PartOf=docker.service
		After=docker.service
		After=cloud-final.service

		[Service]
		Type=simple
		Restart=on-failure
		RestartPreventExitStatus=5
		RestartSec=10s
		EnvironmentFile=-/etc/ecs/ecs.config
		EnvironmentFile=-/etc/fakeagent.env
		ExecStartPre=/bin/bash -c 'if [ $(/usr/bin/systemctl is-active docker) != "active" ]; then exit 1; fi'
		ExecStart=/opt/sandbox/bin/fakeagent

		[Install]
		WantedBy=multi-user.target
	EOF

	# The CloudWatch agent, as the package's unit (aws/amazon-cloudwatch-agent
	# packaging/dependencies/amazon-cloudwatch-agent.service): its start script runs
	# the translator, then the agent; fakecwagent stands in for all three.
	write_file "$root/etc/systemd/system/amazon-cloudwatch-agent.service" 0644 <<-'EOF'
		# Sandbox stand-in for the amazon-cloudwatch-agent package's unit.
		[Unit]
		Description=Amazon CloudWatch Agent (sandbox fakecwagent)
		After=network.target

		[Service]
		Type=simple
		ExecStart=/opt/aws/amazon-cloudwatch-agent/bin/start-amazon-cloudwatch-agent
		KillMode=process
		Restart=on-failure
		RestartSec=60s

		[Install]
		WantedBy=multi-user.target
	EOF
	local cw=$root/opt/aws/amazon-cloudwatch-agent
	mkdir -p "$cw/bin" "$cw/etc/amazon-cloudwatch-agent.d" "$cw/logs" "$root/opt/sandbox/bin"
	ln -sfn /opt/sandbox/bin/fakecwagent "$cw/bin/amazon-cloudwatch-agent"
	ln -sfn /opt/sandbox/bin/fakecwagent "$cw/bin/start-amazon-cloudwatch-agent"
	# The package's version file (cfg/agentinfo reads it; firstrun decides from it
	# whether the agent can ship the journal, from 1.300070.0). A test sets an older
	# one before running firstrun; sandbox.CloudWatchAgentVersion is this one.
	printf '%s\n' 1.300070.0 | write_file "$cw/bin/CWAGENT_VERSION" 0644
	# The package ships common-config.toml, comments only, as a configuration file it
	# never replaces; the start script fails without it (cfg/commonconfig/common-config.toml).
	write_file "$cw/etc/common-config.toml" 0644 <<-'EOF'
		# This common-config is used to configure items used for both ssm and cloudwatch access


		## Configuration for shared credential.
		## Default credential strategy will be used if it is absent here:
		## 	Instance role is used for EC2 case by default.
		##	AmazonCloudWatchAgent profile is used for onPremise case by default.
		# [credentials]
		#    shared_credential_profile = "{profile_name}"
		#    shared_credential_file = "{file_name}"


		## Configuration for proxy.
		## System-wide environment-variable will be read if it is absent here.
		## i.e. HTTP_PROXY/http_proxy; HTTPS_PROXY/https_proxy; NO_PROXY/no_proxy
		## Note: system-wide environment-variable is not accessible when using ssm run-command.
		## Absent in both here and environment-variable means no proxy will be used.
		# [proxy]
		#    http_proxy = "{http_url}"
		#    https_proxy = "{https_url}"
		#    no_proxy = "{domain}"

		# [ssl]
		#    ca_bundle_path = "{ca_bundle_file_path}"
	EOF

	# What firstrun writes or checks starts empty: no config, no agent checkpoint.
	mkdir -p "$root/etc/ecs" "$root/var/lib/ecs/data" "$root/var/log/ecs"

	# Baked disabled: firstrun enables and starts them once it has written the config.
	systemctl --root="$root" --quiet disable docker.service docker.socket containerd.service
	# Not on a server booted in a container: timers that would wake up mid-test, and
	# gettys (nobody logs in; console-getty would print login prompts on the console).
	local quiet=(apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer
		fstrim.timer e2scrub_reap.service console-getty.service getty@.service)
	systemctl --root="$root" --quiet disable "${quiet[@]}"
	systemctl --root="$root" --quiet mask "${quiet[@]}"

	# No hostname of the build host: the container takes its machine name.
	rm -f "$root/etc/hostname"
	# No package lists or downloaded packages: the sandbox has no network.
	rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
}

main() {
	if [[ $# -ne 1 ]]; then
		echo "usage: $0 CACHE_DIR" >&2
		exit 2
	fi
	local cache script key final
	cache=$(realpath -m "$1")
	script=$(realpath "${BASH_SOURCE[0]}")
	key=$(sha256sum "$script" | cut -c1-12)
	final=$cache/rootfs-$key
	if [[ -d $final ]]; then
		echo "$final"
		return
	fi

	mkdir -p "$cache"
	exec 9>"$cache/.lock"
	if ! flock -n 9; then
		log "waiting for another build in $cache"
		flock 9
	fi
	if [[ -d $final ]]; then # built by another process meanwhile
		echo "$final"
		return
	fi

	# Leftovers of builds that were killed; under the lock nobody else is building.
	local stale
	for stale in "$cache"/.build-*; do
		if [[ -d $stale ]]; then
			log "removing an interrupted build: $stale"
			remove_build "$stale"
		fi
	done

	build_dir=$(mktemp -d "$cache/.build-$key.XXXXXX")
	trap 'remove_build "$build_dir"' EXIT
	log "building $final (debootstrap $SUITE, about 75 s)"
	local start=$SECONDS
	mkdir -p "$cache/debs"
	debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$cache/debs" \
		"$SUITE" "$build_dir/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >&2
	provision "$build_dir/rootfs"
	printf 'firstrun e2e sandbox rootfs %s, built %s\n' "$key" "$(date -u +%FT%TZ)" \
		>"$build_dir/rootfs/etc/firstrun-sandbox"
	mv -T "$build_dir/rootfs" "$final"
	log "built $final in $((SECONDS - start)) s"

	local old
	for old in "$cache"/rootfs-*; do
		if [[ $old != "$final" && -d $old ]]; then
			log "stale rootfs (remove when unused): $old"
		fi
	done
	echo "$final"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	main "$@"
fi
