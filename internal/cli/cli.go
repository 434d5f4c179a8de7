// Package cli is the gregor command line: `gregor serve` and the tools that
// replace Kafka's scripts. Each subcommand lives in command_<noun>.go with
// an options struct; output goes to cmd.OutOrStdout() so tests can capture
// it. Errors are one line on stderr and a non-zero exit, never a stack trace.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

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
	root.AddCommand(
		newServeCommand(),
		newTopicsCommand(),
		newConsoleProducerCommand(),
		newConsoleConsumerCommand(),
		newConsumerGroupsCommand(),
		newConfigsCommand(),
	)
	return root
}

// Main runs the command line with the process's standard input and returns
// the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	return Run(context.Background(), args, os.Stdin, stdout, stderr)
}

// Run runs the command line and returns the exit code. Cancelling ctx stops
// a long-running tool (a consumer, a perf test) as Ctrl-C does.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := NewRoot()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		if !errors.Is(err, errAlreadyReported) {
			fmt.Fprintf(stderr, "gregor: %v\n", err)
		}
		return 1
	}
	return 0
}

// errAlreadyReported fails a command whose errors were already printed.
var errAlreadyReported = errors.New("failed (see the errors above)")
