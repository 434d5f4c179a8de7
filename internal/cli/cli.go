// Package cli is the gregor command line: `gregor serve` and the tools that
// replace Kafka's scripts. Each subcommand lives in command_<noun>.go with
// an options struct; output goes to cmd.OutOrStdout() so tests can capture
// it. Errors are one line on stderr and a non-zero exit, never a stack trace.
//
// The tools take the flags of the Kafka scripts they replace and print what
// Kafka 4.x's tools print, line for line:
//
//	command_topics.go             kafka-topics.sh
//	command_console_producer.go   kafka-console-producer.sh (LineMessageReader)
//	command_console_consumer.go   kafka-console-consumer.sh
//	formatter.go                  its DefaultMessageFormatter
//	command_consumer_groups.go    kafka-consumer-groups.sh
//	command_configs.go            kafka-configs.sh (topics and brokers)
//	command_producer_perf.go      kafka-producer-perf-test.sh
//	command_consumer_perf.go      kafka-consumer-perf-test.sh
//	command_storage.go            kafka-storage.sh (random-uuid, format, info)
//	command_cluster.go            kafka-cluster.sh (cluster-id, unregister) and
//	                              kafka-broker-api-versions.sh
//	command_metadata_quorum.go    kafka-metadata-quorum.sh (describe)
//	command_reassign_partitions.go kafka-reassign-partitions.sh
//	command_leader_election.go    kafka-leader-election.sh
//	command_transactions.go       kafka-transactions.sh
//	command_get_offsets.go        kafka-get-offsets.sh (GetOffsetShell)
//	command_delete_records.go     kafka-delete-records.sh
//	command_log_dirs.go           kafka-log-dirs.sh
//	command_dump_log.go           kafka-dump-log.sh (offline, on a log dir's files)
//	command_server_stop.go        kafka-server-stop.sh, and serve -daemon
//	                              (kafka-server-start.sh -daemon)
//	progress.go                   the perf tests' progress bar on a terminal
//	client.go                     connection flags, -X and Kafka client
//	                              properties mapped onto franz-go, the
//	                              fail-fast connection check
//
// Every client tool accepts --bootstrap-server (default localhost:9092; the
// legacy --broker-list too) and rpk-style -X key=value client settings.
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
		newProducerPerfCommand(),
		newConsumerPerfCommand(),
		newStorageCommand(),
		newClusterCommand(),
		newBrokerAPIVersionsCommand(),
		newMetadataQuorumCommand(),
		newReassignPartitionsCommand(),
		newLeaderElectionCommand(),
		newTransactionsCommand(),
		newGetOffsetsCommand(),
		newDeleteRecordsCommand(),
		newLogDirsCommand(),
		newServerStopCommand(),
		newDumpLogCommand(),
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
	root.SetArgs(kafkaStartArgs(args))
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
