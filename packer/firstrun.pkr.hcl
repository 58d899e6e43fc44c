# The firstrun image: the latest Amazon Linux 2023 ECS-optimized AMI, plus a Docker
# volume, the time zone, the cloud-init settings, the CloudWatch agent, and firstrun
# with its unit, which makes each instance launched from it a member of its cluster.
# Build it with `make ami`; check it offline with `make packer-check`. README.md,
# "Build your AMI". Variables: variables.pkr.hcl.

packer {
  required_version = ">= 1.11.2, < 2.0.0"
  required_plugins {
    amazon = {
      # Pinned: scripts/packer-tools.sh builds exactly this version, so `packer init`
      # finds it in PACKER_PLUGIN_PATH and needs no network.
      version = "= 1.3.6"
      source  = "github.com/hashicorp/amazon"
    }
  }
}

locals {
  timestamp     = formatdate("YYYYMMDDhhmmss", timestamp())
  instance_type = var.instance_type != "" ? var.instance_type : (var.architecture == "arm64" ? "t4g.small" : "t3.small")

  # The ECS-optimized AL2023 AMIs are named al2023-ami-ecs-hvm-2023.0.YYYYMMDD-kernel-K-ARCH
  # (aws/amazon-ecs-ami al2023.pkr.hcl, ami_name_prefix_al2023 "al2023-ami-ecs"); the GPU
  # and Neuron variants are al2023-ami-ecs-gpu-hvm-… and al2023-ami-ecs-neuron-hvm-…, not
  # matched here.
  source_ami_name = "al2023-ami-ecs-hvm-*-kernel-*-${var.architecture}"

  # AWS publishes each ECS-optimized AMI's ECS agent and Docker versions in a public SSM
  # parameter named after the image (Amazon ECS developer guide, "Retrieving Amazon
  # ECS-optimized Linux AMI metadata"); the manifest points at it.
  ecs_ami_metadata_path = "/aws/service/ecs/optimized-ami/amazon-linux-2023/${var.architecture == "arm64" ? "arm64/" : ""}"

  # Scripts and commands run as root, with the environment Packer passes them: {{ .Vars }}
  # holds the provisioner's environment_vars, which sudo -E keeps (the AMI's ec2-user may
  # run ALL, which implies SETENV).
  sudo = "{{ .Vars }} sudo -E bash '{{ .Path }}'"

  tags = merge(var.tags, {
    Name            = "${var.ami_name_prefix}-${var.architecture}-${local.timestamp}"
    OS              = "Amazon Linux 2023"
    Architecture    = var.architecture
    FirstrunVersion = var.firstrun_version
    # Filled in by the amazon plugin at build time ("Build template data").
    SourceAMI     = "{{ .SourceAMI }}"
    SourceAMIName = "{{ .SourceAMIName }}"
    BuildRegion   = "{{ .BuildRegion }}"
  })
}

source "amazon-ebs" "al2023" {
  region        = var.region
  instance_type = local.instance_type
  ssh_username  = "ec2-user"
  ssh_interface = var.ssh_interface
  subnet_id     = var.subnet_id

  associate_public_ip_address = var.ssh_interface == "public_ip" || var.ssh_interface == "public_dns"
  # Only the build machine's public address may reach the build instance's SSH port.
  temporary_security_group_source_public_ip = var.ssh_interface == "public_ip" || var.ssh_interface == "public_dns"
  iam_instance_profile                      = var.iam_instance_profile

  # Credentials: the AWS SDK's chain (environment, AWS_PROFILE with its role_arn or SSO
  # session, shared files, the instance or task role); optionally a role assumed on top.
  dynamic "assume_role" {
    for_each = var.assume_role_arn == "" ? [] : [var.assume_role_arn]
    content {
      role_arn     = assume_role.value
      session_name = "firstrun-packer"
    }
  }

  # The source: the given AMI, or the latest ECS-optimized AL2023 AMI owned by Amazon.
  # The filter is left out when source_ami is set: with both, the plugin requires the AMI
  # to match the filter too.
  source_ami = var.source_ami
  dynamic "source_ami_filter" {
    for_each = var.source_ami == "" ? [local.source_ami_name] : []
    content {
      filters = {
        name                = source_ami_filter.value
        architecture        = var.architecture
        virtualization-type = "hvm"
        root-device-type    = "ebs"
      }
      owners      = ["amazon"]
      most_recent = true
    }
  }

  # IMDSv2 only on the build instance.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  # Instances launched from the image default to IMDSv2 only (hop limit 2, so that
  # containers on the bridge network still reach it); firstrun speaks only IMDSv2.
  imds_support = "v2.0"

  # The Docker volume: attached to the build instance, where scripts/storage.sh formats,
  # labels and mounts it; CreateImage then snapshots it into the AMI with the root
  # volume, so every instance gets its own copy, formatted and labelled.
  launch_block_device_mappings {
    device_name           = var.docker_volume_device
    volume_size           = var.docker_volume_size
    volume_type           = "gp3"
    delete_on_termination = true
  }
  # The same device in the AMI's mappings, to say delete_on_termination explicitly: it is
  # the one setting CreateImage may change for an attached volume (the size and type come
  # from the volume; EC2 API reference, CreateImage BlockDeviceMappings).
  ami_block_device_mappings {
    device_name           = var.docker_volume_device
    delete_on_termination = true
  }

  ami_name        = "${var.ami_name_prefix}-${var.architecture}-${local.timestamp}"
  ami_description = "firstrun ${var.firstrun_version} on {{ .SourceAMIName }}"
  tags            = local.tags
  snapshot_tags   = local.tags
}

build {
  sources = ["source.amazon-ebs.al2023"]

  # cloud-init may still be at work on the build instance (packages, users) when SSH
  # answers; let it finish before changing anything.
  provisioner "shell" {
    execute_command = local.sudo
    inline = [
      "set -euo pipefail",
      "cloud-init status --wait >/dev/null || echo 'cloud-init on the build instance ended with errors; going on'",
    ]
  }

  provisioner "shell" {
    execute_command  = local.sudo
    script           = "${path.root}/scripts/storage.sh"
    environment_vars = ["DOCKER_VOLUME_DEVICE=${var.docker_volume_device}"]
  }

  provisioner "shell" {
    execute_command  = local.sudo
    script           = "${path.root}/scripts/time.sh"
    environment_vars = ["TIMEZONE=${var.timezone}"]
  }

  provisioner "shell" {
    execute_command = local.sudo
    script          = "${path.root}/scripts/cloudinit.sh"
  }

  # The unified CloudWatch agent, from the AL2023 repositories (amazon-cloudwatch-agent,
  # there since 2022.0.20220728: amazonlinux/amazon-linux-2023 issue 132). Installed,
  # not enabled: firstrun writes its configuration, then enables and starts it.
  provisioner "shell" {
    execute_command = local.sudo
    inline = [
      "set -euo pipefail",
      "dnf install -y amazon-cloudwatch-agent",
    ]
  }

  provisioner "file" {
    source      = var.firstrun_binary
    destination = "/tmp/firstrun"
  }

  # firstrun's two units: firstrun-early.service joins while user data runs when
  # nothing in it can change firstrun's inputs (firstrun-user-data-check decides),
  # firstrun.service after user data otherwise. README.md, "From user data or cfn-init".
  provisioner "file" {
    sources     = ["${path.root}/files/firstrun.service", "${path.root}/files/firstrun-early.service", "${path.root}/files/firstrun-user-data-check"]
    destination = "/tmp/"
  }

  provisioner "shell" {
    execute_command = local.sudo
    inline = [
      "set -euo pipefail",
      "install -m 0755 -o root -g root /tmp/firstrun /usr/local/bin/firstrun",
      "install -D -m 0755 -o root -g root /tmp/firstrun-user-data-check /usr/local/libexec/firstrun-user-data-check",
      "install -m 0644 -o root -g root /tmp/firstrun.service /tmp/firstrun-early.service /etc/systemd/system/",
      "rm -f /tmp/firstrun /tmp/firstrun.service /tmp/firstrun-early.service /tmp/firstrun-user-data-check",
      # Fails the build at once if the binary is not for this architecture.
      "/usr/local/bin/firstrun --version",
      "systemctl daemon-reload",
      "systemctl enable firstrun.service firstrun-early.service",
    ]
  }

  # ecs.service without After=cloud-final.service, so that firstrun-early.service can
  # start the agent while user data runs (ecs stays disabled: only firstrun starts it).
  provisioner "shell" {
    execute_command = local.sudo
    script          = "${path.root}/scripts/ecs-unit.sh"
  }

  # What the image holds, read on the build instance: kept in the image and copied next
  # to the manifest (tags are fixed before the build starts, so they cannot carry it).
  provisioner "shell" {
    execute_command = local.sudo
    inline = [
      "set -euo pipefail",
      "install -d -m 0755 /usr/local/share/firstrun",
      "{ /usr/local/bin/firstrun --version; rpm -q ecs-init docker containerd amazon-cloudwatch-agent; } | tee /usr/local/share/firstrun/image-versions.txt",
    ]
  }

  provisioner "file" {
    direction   = "download"
    source      = "/usr/local/share/firstrun/image-versions.txt"
    destination = "${path.root}/image-versions.txt"
  }

  # Last: ecs stopped and disabled (the ECS-optimized AMI enables it; firstrun enables
  # and starts it once ecs.config names the cluster, since an agent started before would
  # register to the default cluster and pin it in its checkpoint: DESIGN.md section 3;
  # docker stays enabled, as on the stock AMI), the agent's checkpoint and the build
  # instance's logs, keys and IDs removed.
  provisioner "shell" {
    execute_command = local.sudo
    script          = "${path.root}/scripts/cleanup.sh"
  }

  post-processor "manifest" {
    output     = "${path.root}/manifest.json"
    strip_path = true
    custom_data = {
      firstrun_version     = var.firstrun_version
      architecture         = var.architecture
      source_ami           = build.SourceAMI
      source_ami_name      = build.SourceAMIName
      timezone             = var.timezone
      docker_volume_device = var.docker_volume_device
      docker_volume_size   = "${var.docker_volume_size}"
      # For an ECS-optimized source: its ECS agent and Docker versions, as AWS publishes
      # them (aws ssm get-parameter --name …); image-versions.txt has what was installed.
      ecs_ami_metadata_parameter = "${local.ecs_ami_metadata_path}${build.SourceAMIName}"
      image_versions_file        = "image-versions.txt"
    }
  }
}
