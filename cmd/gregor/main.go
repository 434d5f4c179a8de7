// Command gregor is a Kafka-compatible event streaming broker and the
// command-line tools to use it. `gregor serve` starts a broker; the other
// subcommands replace Kafka's scripts.
package main

import (
	"os"

	"github.com/gregorhq/gregor/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
