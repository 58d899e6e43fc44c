# Variables of the firstrun image (packer/firstrun.pkr.hcl). Set them with
# `make ami PACKER_VARS='-var name=value …'`, PKR_VAR_name in the environment, or
# -var / -var-file on a packer command line. README.md, "Build your AMI".

variable "region" {
  type        = string
  default     = env("AWS_REGION")
  description = "Region to build in (default: $AWS_REGION; make ami also falls back to $AWS_DEFAULT_REGION)."

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.region))
    error_message = "The region must be a region code such as us-east-1: set AWS_REGION, or -var region=…."
  }
}

variable "architecture" {
  type        = string
  default     = "x86_64"
  description = "x86_64 or arm64: the source AMI's architecture; the firstrun binary must match (make ami ARCH=… builds it so)."

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "The architecture must be x86_64 or arm64."
  }
}

variable "instance_type" {
  type        = string
  default     = ""
  description = "Build instance type; empty: t3.small for x86_64, t4g.small for arm64."
}

variable "source_ami" {
  type        = string
  default     = ""
  description = "Source AMI id; empty: the latest Amazon Linux 2023 ECS-optimized AMI of the architecture, owned by Amazon."

  validation {
    condition     = var.source_ami == "" || can(regex("^ami-[0-9a-f]{8,17}$", var.source_ami))
    error_message = "The source_ami must be empty or an AMI id (ami-0123456789abcdef0)."
  }
}

variable "ami_name_prefix" {
  type        = string
  default     = "firstrun-ecs-al2023"
  description = "The AMI is named PREFIX-ARCHITECTURE-YYYYMMDDhhmmss (UTC)."

  validation {
    condition     = can(regex("^[A-Za-z0-9()\\[\\] ./'@_-]{3,100}$", var.ami_name_prefix))
    error_message = "The ami_name_prefix must be 3 to 100 of letters, digits, spaces and ( ) [ ] . / - ' @ _ (EC2's rule for AMI names, leaving room for the suffix)."
  }
}

variable "timezone" {
  type        = string
  default     = "UTC"
  description = "System time zone of the image, an IANA name (scripts/time.sh). The chapter used US/Eastern."
}

variable "docker_volume_size" {
  type        = number
  default     = 20
  description = "Size in GiB of the extra gp3 volume mounted at /var/lib/docker (the chapter's 20 GB)."

  validation {
    condition     = var.docker_volume_size >= 1 && var.docker_volume_size <= 16384 && floor(var.docker_volume_size) == var.docker_volume_size
    error_message = "The docker_volume_size must be a whole number of GiB from 1 to 16384 (gp3's range)."
  }
}

variable "docker_volume_device" {
  type        = string
  default     = "/dev/xvdcz"
  description = "Device name of the Docker volume in the block device mappings; scripts/storage.sh formats, labels and mounts it. (The chapter's was /dev/xvdcy; /dev/xvdcz was the Amazon Linux 1 ECS AMI's Docker volume.)"

  validation {
    condition     = can(regex("^/dev/(sd|xvd)[b-z][a-z]?$", var.docker_volume_device))
    error_message = "The docker_volume_device must be an EBS device name other than the root's, such as /dev/xvdcz or /dev/sdf."
  }
}

variable "firstrun_binary" {
  type        = string
  default     = "bin/firstrun"
  description = "The static linux firstrun binary to install, for the image's architecture (make ami passes the one it builds)."
}

variable "firstrun_version" {
  type        = string
  default     = "dev"
  description = "firstrun's version, for the tags and the manifest (make ami passes git describe)."
}

variable "assume_role_arn" {
  type        = string
  default     = ""
  description = "Optional IAM role for the plugin to assume (its assume_role block) on top of the credentials it finds; empty: use those credentials as they are."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the build instance; empty: the default VPC's."
}

variable "ssh_interface" {
  type        = string
  default     = "public_ip"
  description = "How Packer reaches the build instance: public_ip (default VPC), private_ip (from inside the VPC) or session_manager (needs iam_instance_profile)."

  validation {
    condition     = contains(["public_ip", "private_ip", "public_dns", "private_dns", "session_manager"], var.ssh_interface)
    error_message = "The ssh_interface must be public_ip, private_ip, public_dns, private_dns or session_manager."
  }
}

variable "iam_instance_profile" {
  type        = string
  default     = ""
  description = "Instance profile of the build instance; needed for ssh_interface = session_manager (AmazonSSMManagedInstanceCore)."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Extra tags for the AMI and its snapshots (cost centre, owner, …)."
}
