// Package cli is the gregor command line: `gregor serve` and the tools that
// replace Kafka's scripts. Each subcommand lives in command_<noun>.go with
// an options struct; output goes to cmd.OutOrStdout() so tests can capture
// it. Errors are one line on stderr and a non-zero exit, never a stack trace.
package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

// NewRoot builds the command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "gregor",
		Short:         "Gregor: a Kafka-compatible event streaming broker and its tools",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.AddCommand(newServeCommand())
	return root
}

// Main runs the command line and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintf(stderr, "gregor: %v\n", err)
		return 1
	}
	return 0
}
