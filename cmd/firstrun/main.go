// Command firstrun turns a freshly booted Amazon ECS container instance into a member
// of its cluster: it resolves its inputs, renders the ECS agent, proxy and log agent
// configuration, and writes what differs, atomically. See README.md.
package main

import (
	"os"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}
