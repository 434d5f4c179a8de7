package cli

// gregor storage: kafka-storage.sh. random-uuid prints a new cluster id;
// format writes meta.properties into every log dir (and the metadata log
// dir) of a node before its first start, the way a Kafka KRaft cluster is
// bootstrapped (every node formatted with the same cluster id); info shows
// what the dirs hold. A zero-configuration `gregor serve` formats its own
// dir, so only clusters need this.

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gregorhq/gregor/internal/config"
	"github.com/gregorhq/gregor/internal/metadata"
	"github.com/gregorhq/gregor/internal/storage"
)

func newStorageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "storage",
		Short: "Format and inspect log directories (kafka-storage.sh)",
	}
	cmd.AddCommand(newStorageRandomUUIDCommand(), newStorageFormatCommand(), newStorageInfoCommand())
	return cmd
}

func newStorageRandomUUIDCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "random-uuid",
		Short: "Print a random UUID, for a new cluster id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), metadata.NewUUID().String())
			return nil
		},
	}
}

type storageFormatOptions struct {
	config           string
	clusterID        string
	ignoreFormatted  bool
	standalone       bool
	overrideProperty []string
}

func newStorageFormatCommand() *cobra.Command {
	o := &storageFormatOptions{}
	cmd := &cobra.Command{
		Use:   "format",
		Short: "Write meta.properties into the node's log directories",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.config, "config", "c", "", "the node's server.properties (required)")
	f.StringVarP(&o.clusterID, "cluster-id", "t", "", "the cluster id, from `gregor storage random-uuid` (required)")
	f.BoolVarP(&o.ignoreFormatted, "ignore-formatted", "g", false, "skip directories that are already formatted instead of failing")
	f.BoolVarP(&o.standalone, "standalone", "s", false, "accepted for kafka-storage.sh compatibility: the quorum is controller.quorum.voters")
	f.StringArrayVar(&o.overrideProperty, "add-scram", nil, "accepted for compatibility; SCRAM users are not supported yet")
	_ = cmd.MarkFlagRequired("config")
	_ = cmd.MarkFlagRequired("cluster-id")
	return cmd
}

// storageDirs are the directories a node formats: its log dirs and the
// metadata log dir, once each.
func storageDirs(cfg *config.Config) []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range append(append([]string{}, cfg.LogDirs...), cfg.MetadataLogDir) {
		if d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

func loadNodeConfig(path string) (*config.Config, error) {
	ld := config.NewLoader()
	if err := ld.LoadFile(path); err != nil {
		return nil, err
	}
	return ld.Resolve()
}

func (o *storageFormatOptions) run(cmd *cobra.Command) error {
	if len(o.overrideProperty) > 0 {
		return errors.New("--add-scram: SCRAM credentials are not supported yet")
	}
	if _, err := metadata.ParseUUID(o.clusterID); err != nil {
		return fmt.Errorf("cluster ID string %s does not appear to be a valid UUID", o.clusterID)
	}
	cfg, err := loadNodeConfig(o.config)
	if err != nil {
		return err
	}
	var todo []string
	for _, d := range storageDirs(cfg) {
		m, err := storage.ReadMeta(d)
		switch {
		case errors.Is(err, storage.ErrNotFormatted):
			todo = append(todo, d)
		case err != nil:
			return err
		case o.ignoreFormatted:
			if m.ClusterID != o.clusterID {
				return fmt.Errorf("log directory %s is already formatted for cluster %s, not %s", d, m.ClusterID, o.clusterID)
			}
		default:
			return fmt.Errorf("log directory %s is already formatted. Use --ignore-formatted to ignore this directory and format the others", d)
		}
	}
	if len(todo) == 0 {
		fmt.Fprintln(cmd.OutOrStdout(), "All of the log directories are already formatted.")
		return nil
	}
	for _, d := range todo {
		m := storage.Meta{Version: 1, ClusterID: o.clusterID, NodeID: cfg.NodeID, DirectoryID: metadata.NewUUID().String()}
		if err := storage.WriteMeta(d, m); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Formatting %s with cluster.id %s and node.id %d.\n", d, o.clusterID, cfg.NodeID)
	}
	return nil
}

func newStorageInfoCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Show the node's log directories and their meta.properties",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadNodeConfig(path)
			if err != nil {
				return err
			}
			return storageInfo(cmd, storageDirs(cfg))
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "the node's server.properties (required)")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

// storageInfo prints what kafka-storage.sh info prints: the directories,
// their common metadata, and any problem (an unformatted dir, dirs that
// disagree about the cluster or node). It fails when there is a problem.
func storageInfo(cmd *cobra.Command, dirs []string) error {
	out := cmd.OutOrStdout()
	var found []string
	var problems []string
	metas := map[string]storage.Meta{}
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			problems = append(problems, fmt.Sprintf("%s does not exist", d))
			continue
		}
		found = append(found, d)
		m, err := storage.ReadMeta(d)
		switch {
		case errors.Is(err, storage.ErrNotFormatted):
			problems = append(problems, fmt.Sprintf("%s is not formatted.", d))
		case err != nil:
			problems = append(problems, err.Error())
		default:
			metas[d] = m
		}
	}
	if len(found) > 0 {
		fmt.Fprintf(out, "Found log director%s:\n", map[bool]string{true: "y", false: "ies"}[len(found) == 1])
		for _, d := range found {
			fmt.Fprintf(out, "  %s\n", d)
		}
		fmt.Fprintln(out)
	}
	var first *storage.Meta
	for _, d := range found {
		m, ok := metas[d]
		if !ok {
			continue
		}
		if first == nil {
			first = &m
			continue
		}
		if m.ClusterID != first.ClusterID || m.NodeID != first.NodeID {
			problems = append(problems, fmt.Sprintf("%s belongs to cluster %s node %d, the others to cluster %s node %d",
				d, m.ClusterID, m.NodeID, first.ClusterID, first.NodeID))
		}
	}
	if first != nil {
		// directory.id differs from dir to dir; the rest is the node's.
		kv := []string{"cluster.id=" + first.ClusterID, fmt.Sprintf("node.id=%d", first.NodeID), fmt.Sprintf("version=%d", first.Version)}
		sort.Strings(kv)
		fmt.Fprintf(out, "Found metadata: {%s}\n\n", strings.Join(kv, ", "))
	}
	if len(problems) > 0 {
		fmt.Fprintf(out, "Found problem%s:\n", map[bool]string{true: "", false: "s"}[len(problems) == 1])
		for _, p := range problems {
			fmt.Fprintf(out, "  %s\n", p)
		}
		fmt.Fprintln(out)
		return errAlreadyReported
	}
	return nil
}
