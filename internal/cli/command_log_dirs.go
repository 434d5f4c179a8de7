package cli

// gregor log-dirs: kafka-log-dirs.sh (Kafka's LogDirsCommand).
// DescribeLogDirs (key 35) on every broker, or those of --broker-list (here
// broker ids, as in Kafka's tool, not the legacy spelling of
// --bootstrap-server), filtered to --topic-list. Output as Kafka 4.4:
//
//	Querying brokers for log directories information
//	Received log directory information from brokers 1
//	{"brokers":[{"broker":1,"logDirs":[{"partitions":[{"partition":"t-0","size":0,"offsetLag":0,"isFuture":false}],"error":null,"logDir":"/data"}]}],"version":1}
//
// Kafka lists a directory's partitions in hash order; Gregor sorts them by
// topic, then partition.

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type logDirsOptions struct {
	conn     connFlags
	describe bool
	topics   string
	brokers  string
}

func newLogDirsCommand() *cobra.Command {
	o := &logDirsOptions{}
	cmd := &cobra.Command{
		Use:   "log-dirs --describe [--topic-list T1,T2] [--broker-list 1,2]",
		Short: "Show each broker's log directories and the size of each partition in them (kafka-log-dirs.sh)",
		Long:  "This tool helps to query log directory usage on the specified brokers.",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	// Not conn.AddFlags: here --broker-list is a list of broker ids.
	f.StringVar(&o.conn.bootstrap, "bootstrap-server", "", "the broker(s) to connect to, host:port[,host:port] (default "+defaultBootstrap+")")
	f.StringArrayVarP(&o.conn.settings, "X", "X", nil, "client setting key=value with Kafka's client property names (repeatable)")
	f.StringVar(&o.conn.configFile, "command-config", "", "properties file with client settings")
	f.BoolVar(&o.describe, "describe", false, "describe the log directories on the brokers")
	f.StringVar(&o.topics, "topic-list", "", `the topics to show, "topic1,topic2,topic3" (default: every topic)`)
	f.StringVar(&o.brokers, "broker-list", "", `the brokers to query, "0,1,2" (default: every broker in the cluster)`)
	return cmd
}

func splitNonEmpty(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}

func joinIDs(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, ",")
}

func (o *logDirsOptions) run(cmd *cobra.Command) error {
	if !o.describe {
		return errors.New("Missing required option(s): describe")
	}
	topics := map[string]bool{}
	for _, t := range splitNonEmpty(o.topics) {
		topics[t] = true
	}
	asked := map[int32]bool{}
	for _, s := range splitNonEmpty(o.brokers) {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return fmt.Errorf("For input string: %q", s)
		}
		asked[int32(n)] = true
	}
	ctx, cancel := adminContext(cmd)
	defer cancel()
	adm, err := newAdmin(ctx, cmd, &o.conn)
	if err != nil {
		return err
	}
	defer adm.Close()
	cluster, err := adm.ListBrokers(ctx)
	if err != nil {
		return err
	}
	var existing, query, missing []int32
	known := map[int32]bool{}
	for _, b := range cluster {
		existing = append(existing, b.NodeID)
		known[b.NodeID] = true
		if len(asked) == 0 || asked[b.NodeID] {
			query = append(query, b.NodeID)
		}
	}
	for id := range asked {
		if !known[id] {
			missing = append(missing, id)
		}
	}
	for _, s := range [][]int32{existing, query, missing} {
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	}
	if len(missing) > 0 {
		return fmt.Errorf("ERROR: The given brokers do not exist from --broker-list: %s. Current existent brokers: %s", joinIDs(missing), joinIDs(existing))
	}
	w := cmd.OutOrStdout()
	fmt.Fprintln(w, "Querying brokers for log directories information")

	var out strings.Builder
	out.WriteString(`{"brokers":[`)
	for i, id := range query {
		req := kmsg.NewPtrDescribeLogDirsRequest() // Topics nil: every directory, every partition
		resp, err := req.RequestWith(ctx, adm.cl.Broker(int(id)))
		if err != nil {
			return err
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return err
		}
		if i > 0 {
			out.WriteByte(',')
		}
		fmt.Fprintf(&out, `{"broker":%d,"logDirs":[`, id)
		dirs := resp.Dirs
		sort.Slice(dirs, func(a, b int) bool { return dirs[a].Dir < dirs[b].Dir })
		for j, d := range dirs {
			if j > 0 {
				out.WriteByte(',')
			}
			type part struct {
				topic     string
				partition int32
				size, lag int64
				future    bool
			}
			var parts []part
			for _, t := range d.Topics {
				if len(topics) > 0 && !topics[t.Topic] {
					continue
				}
				for _, p := range t.Partitions {
					parts = append(parts, part{t.Topic, p.Partition, p.Size, p.OffsetLag, p.IsFuture})
				}
			}
			sort.Slice(parts, func(a, b int) bool {
				if parts[a].topic != parts[b].topic {
					return parts[a].topic < parts[b].topic
				}
				return parts[a].partition < parts[b].partition
			})
			out.WriteString(`{"partitions":[`)
			for k, p := range parts {
				if k > 0 {
					out.WriteByte(',')
				}
				fmt.Fprintf(&out, `{"partition":%s,"size":%d,"offsetLag":%d,"isFuture":%t}`,
					jsonString(fmt.Sprintf("%s-%d", p.topic, p.partition)), p.size, p.lag, p.future)
			}
			errName := "null"
			if d.ErrorCode != 0 {
				errName = jsonString(javaException(d.ErrorCode))
			}
			fmt.Fprintf(&out, `],"error":%s,"logDir":%s}`, errName, jsonString(d.Dir))
		}
		out.WriteString("]}")
	}
	out.WriteString(`],"version":1}`)
	fmt.Fprintf(w, "Received log directory information from brokers %s\n", joinIDs(query))
	fmt.Fprintln(w, out.String())
	return nil
}

// jsonString quotes s as Jackson does: no HTML escaping of <, > and &.
func jsonString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
