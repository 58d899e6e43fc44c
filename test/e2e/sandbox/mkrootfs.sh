#!/usr/bin/env bash
# mkrootfs.sh CACHE_DIR
#
# Builds, once, the two root file systems the end-to-end sandbox boots with
# systemd-nspawn, from one debootstrap of Debian bookworm with systemd, D-Bus, docker
# and cloud-init (the real Debian package, 22.4):
#
#   CACHE_DIR/stock-KEY   the stock Amazon ECS-optimized AMI's shape: docker and ecs
#                         enabled at boot, ecs.service ordered After=cloud-final.service
#                         as Amazon Linux ships it, no firstrun;
#   CACHE_DIR/rootfs-KEY  the firstrun image: the stock one with what `make ami` adds
#                         and removes (packer/firstrun.pkr.hcl): firstrun's units and
#                         check installed and enabled as the template does, the
#                         cloud-init drop-in (packer/scripts/cloudinit.sh), ecs.service
#                         without After=cloud-final.service (ecs-unit.sh) and the
#                         cleanup (cleanup.sh), each run with ROOT=. Its path is printed
#                         on stdout; progress goes to stderr.
#
# cloud-init is enabled only when the container's "kernel command line" (systemd-nspawn
# passes it to PID 1, and cloud-init reads /proc/1/cmdline in a container) says
# cloud-init=enabled: package sandbox does so when it boots an instance with a NoCloud
# seed; other boots see /etc/cloud/cloud-init.disabled, as before cloud-init was there.
#
# KEY is a hash of this script and of the packer files it installs, so editing either
# builds new ones (older ones are listed, not removed: a running sandbox may still use
# them). They are built beside their final place and renamed into it, under a lock, so
# concurrent callers wait for one build. The test binaries are not in them: the sandbox
# binds them read-only at /opt/sandbox/bin.
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian). Downloaded
# packages are kept in CACHE_DIR/debs for the next build.
set -euo pipefail

readonly SUITE=bookworm
# python3-cffi-backend: python3-cryptography (cloud-init, through python3-oauthlib)
# depends on it through virtual packages, which debootstrap does not resolve.
readonly PACKAGES=systemd,systemd-sysv,dbus,docker.io,iproute2,procps,curl,cloud-init,python3-cffi-backend

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

# provision_base ROOT: what both root file systems share: docker as it runs in a
# container, the ECS and CloudWatch agents' stand-ins, cloud-init's sandbox settings.
provision_base() {
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
	# ExecStart and its test knobs in /etc/fakeagent.env; where the ecs-init package
	# installs it, so that the image may override it in /etc.
	write_file "$root/usr/lib/systemd/system/ecs.service" 0644 <<-'EOF'
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

	provision_cloud "$root"
}

# provision_cloud ROOT: what an instance boot (package sandbox, Instance) needs besides
# the image: cloud-init's sandbox settings, and EC2's services standing in at their
# addresses, each started only when the boot's files ask for it.
provision_cloud() {
	local root=$1

	# Off unless the boot says cloud-init=enabled (see the header).
	: >"$root/etc/cloud/cloud-init.disabled"
	# NoCloud, the seed directory the boot binds at /var/lib/cloud/seed/nocloud
	# (cloud-init docs, "NoCloud": meta-data and user-data files); on EC2 it would be
	# the Ec2 datasource reading IMDS. No network configuration: the container's
	# network is systemd-nspawn's (a private loopback); cloud-init would otherwise look
	# for a renderer (ifupdown, netplan, networkd) that minbase lacks. No locale module:
	# Debian's default locale, en_US.UTF-8, is not generated in minbase, and
	# update-locale refuses it, which fails cloud-config.service (on AL2023 the
	# locale exists).
	write_file "$root/etc/cloud/cloud.cfg.d/01-sandbox.cfg" 0644 <<-'EOF'
		# Sandbox (test/e2e/sandbox/mkrootfs.sh): the NoCloud seed directory only, no
		# network configuration (systemd-nspawn's private network), no locale change.
		datasource_list: [ NoCloud ]
		network: {config: disabled}
		locale: false
	EOF

	# cloud-final.service as Amazon Linux 2023's cloud-init 22.2.2 has it: not ordered
	# After=multi-user.target. Debian's 22.4 is (so is every cloud-init from 24.4,
	# canonical/cloud-init PR 5830), which makes the stock AMI's own ordering a cycle
	# (ecs.service WantedBy=multi-user.target and After=cloud-final.service) that systemd
	# breaks by dropping a job at random: the stock flow would join the default cluster.
	# The image's units have no such cycle with either (make packer-check).
	sed '/^After=multi-user.target$/d' "$root/usr/lib/systemd/system/cloud-final.service" \
		>"$root/etc/systemd/system/cloud-final.service"
	grep -q '^After=multi-user.target$' "$root/usr/lib/systemd/system/cloud-final.service" || {
		log "cloud-final.service has no After=multi-user.target line: check the sandbox's override"
		exit 1
	}

	# IMDS at its address, 169.254.169.254:80, in the sandbox's own network namespace:
	# the boot's imds.sh runs AWS's mock there (or a listener that never answers, or
	# nothing). Up before anything that could ask, as on EC2.
	write_file "$root/etc/systemd/system/sandbox-imds.service" 0644 <<-'EOF'
		# Sandbox: the instance metadata service at 169.254.169.254, from the boot's imds.sh.
		[Unit]
		Description=Instance metadata service (sandbox stand-in)
		DefaultDependencies=no
		ConditionPathExists=/opt/sandbox/boot/imds.sh
		Before=sysinit.target cloud-init-local.service

		[Service]
		Type=simple
		Environment=HOME=/root
		ExecStartPre=/usr/sbin/ip address add 169.254.169.254/32 dev lo
		ExecStart=/bin/sh /opt/sandbox/boot/imds.sh

		[Install]
		WantedBy=sysinit.target
	EOF
	# CloudFormation's regional endpoint, as the stand-in fakecfn on 127.0.0.1:8081
	# with the boot's stacks; every unit (cloud-final's user data included) is told
	# where it is, as the SDK's AWS_ENDPOINT_URL_CLOUDFORMATION allows.
	write_file "$root/etc/systemd/system/sandbox-cfn.service" 0644 <<-'EOF'
		# Sandbox: CloudFormation's endpoint, the stand-in fakecfn with the boot's stacks.
		[Unit]
		Description=CloudFormation endpoint (sandbox stand-in)
		DefaultDependencies=no
		ConditionPathExists=/opt/sandbox/boot/fakecfn.json
		Before=sysinit.target

		[Service]
		Type=simple
		ExecStart=/opt/sandbox/bin/fakecfn -listen 127.0.0.1:8081 -log /var/log/fakecfn.jsonl -config /opt/sandbox/boot/fakecfn.json

		[Install]
		WantedBy=sysinit.target
	EOF
	write_file "$root/etc/systemd/system.conf.d/sandbox-aws.conf" 0644 <<-'EOF'
		# Sandbox: CloudFormation is the stand-in on loopback (sandbox-cfn.service).
		[Manager]
		DefaultEnvironment=AWS_ENDPOINT_URL_CLOUDFORMATION=http://127.0.0.1:8081
	EOF
	systemctl --root="$root" --quiet enable sandbox-imds.service sandbox-cfn.service
}

# provision_stock ROOT: the stock ECS-optimized AMI enables docker and ecs at boot
# (aws/amazon-ecs-ami: "systemctl enable ecs", docker's package enables docker).
provision_stock() {
	local root=$1
	systemctl --root="$root" --quiet enable docker.service docker.socket containerd.service ecs.service
}

# provision_image ROOT REPO: what `make ami` does to the stock AMI, in the template's
# order: cloudinit.sh, firstrun and its unit installed and enabled, cleanup.sh last.
provision_image() {
	local root=$1 repo=$2
	ROOT=$root bash "$repo/packer/scripts/cloudinit.sh" >&2
	ROOT=$root bash "$repo/packer/scripts/ecs-unit.sh" >&2
	# The binary the sandbox binds in, where the template installs it.
	mkdir -p "$root/usr/local/bin" "$root/usr/local/libexec"
	ln -sfn /opt/sandbox/bin/firstrun "$root/usr/local/bin/firstrun"
	install -m 0755 "$repo/packer/files/firstrun-user-data-check" "$root/usr/local/libexec/"
	local unit
	for unit in "$repo"/packer/files/*.service; do
		install -m 0644 "$unit" "$root/etc/systemd/system/"
		systemctl --root="$root" --quiet enable "$(basename "$unit")"
	done
	ROOT=$root bash "$repo/packer/scripts/cleanup.sh" >&2
}

main() {
	if [[ $# -ne 1 ]]; then
		echo "usage: $0 CACHE_DIR" >&2
		exit 2
	fi
	local cache script repo key final stock
	cache=$(realpath -m "$1")
	script=$(realpath "${BASH_SOURCE[0]}")
	repo=$(realpath "$(dirname "$script")/../../..")
	key=$(cat "$script" "$repo"/packer/files/* "$repo"/packer/scripts/cloudinit.sh \
		"$repo"/packer/scripts/ecs-unit.sh "$repo"/packer/scripts/cleanup.sh | sha256sum | cut -c1-12)
	final=$cache/rootfs-$key
	stock=$cache/stock-$key
	# The image is renamed into place last: once it is there, both are.
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
	log "building $final and $stock (debootstrap $SUITE, about 2 minutes)"
	local start=$SECONDS
	mkdir -p "$cache/debs"
	if ! debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$cache/debs" \
		"$SUITE" "$build_dir/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >&2; then
		tail -n 40 "$build_dir/rootfs/debootstrap/debootstrap.log" >&2 || true
		exit 1
	fi
	provision_base "$build_dir/rootfs"
	provision_stock "$build_dir/rootfs"
	cp -a "$build_dir/rootfs" "$build_dir/stock"
	printf 'firstrun e2e sandbox: the stock ECS AMI %s, built %s\n' "$key" "$(date -u +%FT%TZ)" \
		>"$build_dir/stock/etc/firstrun-sandbox"
	provision_image "$build_dir/rootfs" "$repo"
	printf 'firstrun e2e sandbox: the firstrun image %s, built %s\n' "$key" "$(date -u +%FT%TZ)" \
		>"$build_dir/rootfs/etc/firstrun-sandbox"
	rm -rf --one-file-system "$stock"
	mv -T "$build_dir/stock" "$stock"
	mv -T "$build_dir/rootfs" "$final"
	log "built $final and $stock in $((SECONDS - start)) s"

	local old
	for old in "$cache"/rootfs-* "$cache"/stock-*; do
		if [[ $old != "$final" && $old != "$stock" && -d $old ]]; then
			log "stale rootfs (remove when unused): $old"
		fi
	done
	echo "$final"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	main "$@"
fi
