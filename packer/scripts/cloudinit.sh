#!/usr/bin/env bash
# cloudinit.sh: no package upgrade and no repository refresh by cloud-init at boot (the
# chapter's scripts/cloudinit.sh).
#
# Why, then: on Amazon Linux 1 cloud-init ran "yum upgrade --security" at every
# launch (cloud.cfg's repo_upgrade: security) before user data could set a proxy, so
# behind a proxy the boot waited on yum timing out; the chapter set repo_update: false
# and repo_upgrade: none with two sed edits of /etc/cloud/cloud.cfg.
#
# What it means on AL2023: little, by default. AL2023 locks each AMI to its release's
# versioned repository ("deterministic upgrades": "By default, your AL2023 instance
# doesn't automatically receive additional critical and important security updates at
# launch", AL2023 user guide, "Deterministic upgrades through versioned repositories"),
# and the ECS-optimized AL2023 AMI already ships /etc/cloud/cloud.cfg.d/90_ecs.cfg with
# "repo_upgrade: none" (aws/amazon-ecs-ami al2023.pkr.hcl installs
# files/90_ecs.cfg.amzn2; its PR 254 turned the upgrade at launch off this way for AL2,
# overriding the distribution's repo_upgrade: security). It still matters when the
# image is built from another base, or when a cloud.cfg.d file or a package brings the
# upgrade back: so the image states it itself, and repo_update: false keeps cloud-init
# from refreshing repository metadata through a proxy it does not know yet.
#
# How: a drop-in, /etc/cloud/cloud.cfg.d/99-firstrun.cfg, not an edit of cloud.cfg.
# cloud-init reads cloud.cfg and then every cloud.cfg.d/*.cfg, later files winning
# (cloudinit.util.read_conf_with_confd), which is how the ECS AMI overrides the key; a
# drop-in survives cloud-init package updates (cloud.cfg is the package's file) and
# sorts after 90_ecs.cfg. User data can still turn the upgrade on for one instance.
#
# Environment (optional): ROOT, prefix of every path edited ("").
#
# No /etc/cloud/cloud.cfg means cloud-init is not installed: an error, nothing written.
# A cloud.cfg.d file sorting after ours that sets either key would override ours: an
# error too, before anything is written. A second run changes nothing (the drop-in is
# rewritten only when its content differs).
set -euo pipefail

readonly prog=cloudinit.sh
root=${ROOT:-}
root=${root%/}

log() { printf '%s: %s\n' "$prog" "$*"; }
die() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 1
}

cloud_cfg=$root/etc/cloud/cloud.cfg
confd=$root/etc/cloud/cloud.cfg.d
readonly name=99-firstrun.cfg
dropin=$confd/$name
content='#cloud-config
# Written by the image build (packer/scripts/cloudinit.sh). No repository refresh and
# no package upgrade at boot: AL2023 stays on the release its AMI is locked to, and
# cloud-init runs before user data could set an HTTP proxy.
repo_update: false
repo_upgrade: none
'

[[ -f $cloud_cfg ]] || die "$cloud_cfg not found: cloud-init is not installed"

# Files cloud-init reads after ours (Python's sorted(), byte order) must not set the keys.
shopt -s nullglob
for f in "$confd"/*.cfg; do
	base=${f##*/}
	if [[ $base > $name ]] && grep -Eq '^(repo_update|repo_upgrade)[[:space:]]*:' -- "$f"; then
		die "$f is read after $name and sets $(grep -Eo '^(repo_update|repo_upgrade)' -- "$f" | paste -sd, -): it would win; remove it or rename it before $name"
	fi
done
shopt -u nullglob

current=
if [[ -f $dropin ]]; then
	# read stops at end of file without a NUL and so returns 1: expected.
	IFS= read -r -d '' current <"$dropin" || true
fi
if [[ $current == "$content" ]]; then
	log "${dropin#"$root"} already sets repo_update: false, repo_upgrade: none"
else
	log "writing ${dropin#"$root"}: repo_update: false, repo_upgrade: none"
	mkdir -p -- "$confd"
	new=$(mktemp "$dropin.XXXXXX")
	chmod 0644 -- "$new"
	printf '%s' "$content" >"$new"
	mv -f -- "$new" "$dropin"
fi
log "done"
