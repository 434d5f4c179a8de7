package cli

// gregor cluster: kafka-cluster.sh. cluster-id prints the id of the
// cluster the bootstrap servers belong to (DescribeCluster); unregister
// removes a broker that is gone for good from the cluster metadata
// (UnregisterBroker, which a Gregor broker serves once it runs clustered).
//
// gregor broker-api-versions: kafka-broker-api-versions.sh. Every broker
// of the cluster with the version range of each API it serves, and the
// version this client would use ("usable"); APIs the client knows and the
// broker does not serve are UNSUPPORTED. The client is franz-go, so
// "usable" is franz-go's, where Kafka's tool shows the Java client's.

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func newClusterCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster id, unregister a broker (kafka-cluster.sh)",
	}
	var conn connFlags
	id := &cobra.Command{
		Use:   "cluster-id",
		Short: "Print the cluster id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAdmin(cmd, &conn, func(ctx context.Context, adm *adminClient) error {
				meta, err := adm.BrokerMetadata(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Cluster ID: %s\n", meta.Cluster)
				return nil
			})
		},
	}
	conn.AddFlags(id.Flags(), "config")
	var uconn connFlags
	var brokerID int32
	unregister := &cobra.Command{
		Use:   "unregister --id N",
		Short: "Remove a broker that is gone for good from the cluster metadata",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAdmin(cmd, &uconn, func(ctx context.Context, adm *adminClient) error {
				req := kmsg.NewPtrUnregisterBrokerRequest()
				req.BrokerID = brokerID
				resp, err := req.RequestWith(ctx, adm.cl)
				if err != nil {
					return err
				}
				if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
					msg := ""
					if resp.ErrorMessage != nil {
						msg = *resp.ErrorMessage
					}
					return kafkaError(err, msg)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Broker %d is no longer registered.\n", brokerID)
				return nil
			})
		},
	}
	uconn.AddFlags(unregister.Flags(), "config")
	unregister.Flags().Int32Var(&brokerID, "id", -1, "the id of the broker to unregister")
	_ = unregister.MarkFlagRequired("id")
	cmd.AddCommand(id, unregister)
	return cmd
}

func newBrokerAPIVersionsCommand() *cobra.Command {
	var conn connFlags
	cmd := &cobra.Command{
		Use:   "broker-api-versions",
		Short: "Show the API versions every broker serves (kafka-broker-api-versions.sh)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAdmin(cmd, &conn, func(ctx context.Context, adm *adminClient) error {
				return printAPIVersions(ctx, cmd, adm)
			})
		},
	}
	conn.AddFlags(cmd.Flags(), "command-config")
	return cmd
}

// printAPIVersions prints every broker's API versions in Kafka's format.
func printAPIVersions(ctx context.Context, cmd *cobra.Command, adm *adminClient) error {
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	for _, b := range meta.Brokers {
		req := kmsg.NewPtrApiVersionsRequest()
		req.ClientSoftwareName, req.ClientSoftwareVersion = "gregor", Version
		resp, err := req.RequestWith(ctx, adm.cl.Broker(int(b.NodeID)))
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err != nil {
			return fmt.Errorf("broker %d: %w", b.NodeID, err)
		}
		rack := "null"
		if b.Rack != nil {
			rack = *b.Rack
		}
		fmt.Fprintf(out, "%s:%d (id: %d rack: %s isFenced: false) -> (\n", b.Host, b.Port, b.NodeID, rack)
		lines := apiVersionLines(resp.ApiKeys)
		for i, l := range lines {
			sep := ","
			if i == len(lines)-1 {
				sep = ""
			}
			fmt.Fprintf(out, "\t%s%s\n", l, sep)
		}
		fmt.Fprintln(out, ")")
	}
	return nil
}

// runAdmin runs fn with an admin client for the connection flags, under
// the admin tools' timeout.
func runAdmin(cmd *cobra.Command, conn *connFlags, fn func(ctx context.Context, adm *adminClient) error) error {
	ctx, cancel := adminContext(cmd)
	defer cancel()
	adm, err := newAdmin(ctx, cmd, conn)
	if err != nil {
		return err
	}
	defer adm.cl.Close()
	return fn(ctx, adm)
}

// apiVersionLines renders Kafka's tool's lines: "Name(key): min to max
// [usable: v]" for served APIs, "Name(key): UNSUPPORTED" for APIs the
// client knows and the broker does not serve.
func apiVersionLines(served []kmsg.ApiVersionsResponseApiKey) []string {
	byKey := map[int16]kmsg.ApiVersionsResponseApiKey{}
	for _, k := range served {
		byKey[k.ApiKey] = k
	}
	keys := map[int16]bool{}
	for k := range byKey {
		keys[k] = true
	}
	for k := int16(0); k <= kmsg.MaxKey; k++ {
		if kmsg.RequestForKey(k) != nil && !interBrokerAPIs[k] {
			keys[k] = true
		}
	}
	sorted := make([]int16, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var out []string
	for _, k := range sorted {
		name := kafkaAPIName[k]
		if name == "" {
			name = kmsg.NameForKey(k)
		}
		if name == "" {
			name = fmt.Sprintf("Unknown%d", k)
		}
		v, ok := byKey[k]
		if !ok {
			out = append(out, fmt.Sprintf("%s(%d): UNSUPPORTED", name, k))
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s(%d): %d", name, k, v.MinVersion)
		if v.MaxVersion != v.MinVersion {
			fmt.Fprintf(&b, " to %d", v.MaxVersion)
		}
		usable := v.MaxVersion
		if r := kmsg.RequestForKey(k); r != nil && r.MaxVersion() < usable {
			usable = r.MaxVersion()
		}
		if r := kmsg.RequestForKey(k); r == nil || usable < v.MinVersion {
			b.WriteString(" [unusable: client has no version in range]")
		} else {
			fmt.Fprintf(&b, " [usable: %d]", usable)
		}
		out = append(out, b.String())
	}
	return out
}

// interBrokerAPIs are the APIs only brokers and controllers send to each
// other; Kafka's tool does not list them as client APIs.
var interBrokerAPIs = map[int16]bool{
	4: true, 5: true, 6: true, 7: true, // the ZooKeeper-era controller requests
	52: true, 53: true, 54: true, 59: true, 82: true, // KRaft's raft
	56: true, 58: true, 62: true, 63: true, 67: true, 70: true, 73: true,
}

// kafkaAPIName is Kafka's spelling where franz-go's differs.
var kafkaAPIName = map[int16]string{
	17: "SaslHandshake",
	22: "InitProducerId",
	29: "DescribeAcls",
	30: "CreateAcls",
	31: "DeleteAcls",
	36: "SaslAuthenticate",
	45: "AlterPartitionReassignments",
	50: "DescribeUserScramCredentials",
	51: "AlterUserScramCredentials",
}
