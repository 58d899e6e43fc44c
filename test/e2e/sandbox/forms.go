package sandbox

import (
	"github.com/firstrun/firstrun/internal/cfnsignal/cfnsignaltest"
	"github.com/firstrun/firstrun/test/imdsmock"
)

// The user data forms of README's "From user data or cfn-init", as instances to boot:
// the end-to-end boot tests boot each once, the benchmark many times.

// BootCluster is the cluster every boot joins.
const BootCluster = "boot-cluster"

// bootStack is the stack whose CreationPolicy waits for the instance's signal.
var bootStack = cfnsignaltest.Waiting("boot-stack", "ECSAutoScalingGroup", 1)

// BootIMDS is the instance metadata of an instance launched by CloudFormation in an
// Auto Scaling group; withCluster adds the cluster tag.
func BootIMDS(withCluster bool) *imdsmock.Config {
	tags := map[string]string{
		"aws:cloudformation:stack-name": "boot-stack",
		"aws:cloudformation:logical-id": "ECSAutoScalingGroup",
		"aws:autoscaling:groupName":     "boot-stack-ECSAutoScalingGroup-1A2B",
	}
	if withCluster {
		tags["ecs:cluster-name"] = BootCluster
	}
	return &imdsmock.Config{Region: "eu-west-1", Tags: tags}
}

// BootForm is one way to give an instance its inputs at launch.
type BootForm struct {
	// Name names the form in tests and in the benchmark's table.
	Name string
	// Instance is the boot.
	Instance Instance
	// Firstrun says the boot is firstrun's image (not the stock AMI's).
	Firstrun bool
	// Early says firstrun-early.service joins while user data runs (nothing in the user
	// data names ECS's or firstrun's files); else firstrun.service runs after it.
	Early bool
	// Signals is how many SUCCESS signals CloudFormation must get.
	Signals int
}

// readmeUserData is README's shell user data ("From user data or cfn-init"), with the
// cluster instead of a proxy (the sandbox has none).
const readmeUserData = `#!/bin/bash
install -D -m 0600 /dev/null /etc/firstrun/firstrun.env
cat > /etc/firstrun/firstrun.env <<'EOF'
ECS_CLUSTER=` + BootCluster + `
EOF
exec /usr/local/bin/firstrun --signal
`

// WriteFilesUserData is cloud-config that writes the env file, and no script.
const WriteFilesUserData = `#cloud-config
write_files:
  - path: /etc/firstrun/firstrun.env
    owner: root:root
    permissions: '0600'
    content: |
      ECS_CLUSTER=` + BootCluster + `
`

// cfnInitUserData has cfn-init's shape: user data runs cfn-init, which writes the
// AWS::CloudFormation::Init files entry (the env file, mode 000600, owner root) and
// then runs each commands entry with a shell (here one: firstrun --signal), with no
// cfn-signal after it. No real cfn-init: what it does to the instance, in its order.
const cfnInitUserData = `#!/bin/bash
# /opt/aws/bin/cfn-init -v --stack boot-stack --resource LaunchTemplate --region eu-west-1
cfn_init() {
  # files: /etc/firstrun/firstrun.env
  install -d -m 0755 /etc/firstrun
  (umask 077 && printf '%s\n' 'ECS_CLUSTER=` + BootCluster + `' >/etc/firstrun/firstrun.env.tmp)
  mv -f /etc/firstrun/firstrun.env.tmp /etc/firstrun/firstrun.env
  # commands: 01-firstrun
  /bin/sh -c '/usr/local/bin/firstrun --signal'
}
cfn_init
`

// stockUserData is the stock AMI's way: the cluster appended to ecs.config.
const stockUserData = `#!/bin/bash
echo ECS_CLUSTER=` + BootCluster + ` >> /etc/ecs/ecs.config
`

// BootForms are the five user data forms of README's "From user data or cfn-init".
func BootForms() []BootForm {
	stacks := []cfnsignaltest.Stack{bootStack}
	return []BootForm{
		{Name: "none", Firstrun: true, Early: true, Instance: Instance{IMDS: BootIMDS(true), Stacks: stacks}},
		{Name: "shell", Firstrun: true, Signals: 1, Instance: Instance{UserData: readmeUserData, IMDS: BootIMDS(false), Stacks: stacks}},
		{Name: "write_files", Firstrun: true, Early: true, Instance: Instance{UserData: WriteFilesUserData, IMDS: BootIMDS(false), Stacks: stacks}},
		{Name: "cfn-init", Firstrun: true, Signals: 1, Instance: Instance{UserData: cfnInitUserData, IMDS: BootIMDS(false), Stacks: stacks}},
		{Name: "stock", Instance: Instance{Stock: true, UserData: stockUserData, IMDS: BootIMDS(false), Stacks: stacks}},
	}
}
