package cli

// gregor metadata-quorum: kafka-metadata-quorum.sh (Kafka's
// MetadataQuorumCommand). `describe --status` prints the KRaft quorum in
// Kafka's key/value block, `describe --replication` the per-replica table
// (tab-separated, every cell padded to its column's width, a tab after each
// cell including the last), with --human-readable turning the timestamps
// into "N ms ago".
//
// On the wire it does what Kafka 4.4's admin client does:
//
//	--bootstrap-server:     Metadata (the connection check), then for
//	                        --status DescribeCluster (EndpointType 1) for the
//	                        cluster id, then DescribeQuorum (key 55) for
//	                        __cluster_metadata-0 to a broker, which forwards it
//	                        to the active controller.
//	--bootstrap-controller: DescribeCluster (EndpointType 2) to the given
//	                        controller listener, which names the controllers
//	                        and the active one (ControllerId) with their
//	                        controller-listener addresses and the cluster id;
//	                        then DescribeQuorum to the active controller. A
//	                        controller listener serves no Metadata, so the
//	                        connection check is that first DescribeCluster.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// metadataTopic is the KRaft metadata log, the one partition
// DescribeQuorum asks about.
const metadataTopic = "__cluster_metadata"

type metadataQuorumOptions struct {
	bootstrapServer     string
	bootstrapController string
	commandConfig       string
	settings            []string

	status, replication, humanReadable bool
}

func newMetadataQuorumCommand() *cobra.Command {
	o := &metadataQuorumOptions{}
	cmd := &cobra.Command{
		Use:   "metadata-quorum (--bootstrap-server HOST:PORT | --bootstrap-controller HOST:PORT) describe (--status | --replication [--human-readable])",
		Short: "Describe the KRaft metadata quorum (kafka-metadata-quorum.sh)",
		Long: "Describe the KRaft metadata quorum: its leader, epoch, high watermark and voters\n" +
			"(describe --status), or every replica's log end offset and lag (describe --replication).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkConnection(); err != nil {
				return err
			}
			return errors.New("too few arguments: give a command (describe)")
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.bootstrapServer, "bootstrap-server", "", "a comma-separated list of host:port pairs of the Kafka cluster's brokers")
	pf.StringVar(&o.bootstrapController, "bootstrap-controller", "", "a comma-separated list of host:port pairs of the Kafka cluster's controllers")
	pf.StringVar(&o.commandConfig, "command-config", "", "property file with admin client settings")
	pf.StringArrayVarP(&o.settings, "X", "X", nil, "client setting key=value with Kafka's client property names (repeatable)")

	describe := &cobra.Command{
		Use:   "describe (--status | --replication [--human-readable])",
		Short: "Describe the metadata quorum info",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.runDescribe(cmd) },
	}
	f := describe.Flags()
	f.BoolVar(&o.status, "status", false, "a short summary of the quorum status")
	f.BoolVar(&o.replication, "replication", false, "detailed information about the status of replication")
	f.BoolVar(&o.humanReadable, "human-readable", false, "with --replication: timestamps as \"N ms ago\"")
	cmd.AddCommand(describe)
	return cmd
}

// checkConnection checks the connection flags as Kafka's argument parser
// does: exactly one of --bootstrap-server and --bootstrap-controller.
func (o *metadataQuorumOptions) checkConnection() error {
	switch {
	case o.bootstrapServer != "" && o.bootstrapController != "":
		return errors.New("argument --bootstrap-controller: not allowed with argument --bootstrap-server")
	case o.bootstrapServer == "" && o.bootstrapController == "":
		return errors.New("one of the arguments --bootstrap-server --bootstrap-controller is required")
	}
	return nil
}

// checkDescribe checks describe's flags in Kafka's order, with its messages.
func (o *metadataQuorumOptions) checkDescribe() error {
	switch {
	case o.status && o.replication:
		return errors.New("Only one of --status or --replication should be specified with describe sub-command")
	case o.status && o.humanReadable:
		return errors.New("The option --human-readable is only supported along with --replication")
	case !o.status && !o.replication:
		return errors.New("One of --status or --replication must be specified with describe sub-command")
	}
	return nil
}

func (o *metadataQuorumOptions) runDescribe(cmd *cobra.Command) error {
	if err := o.checkConnection(); err != nil {
		return err
	}
	if o.commandConfig != "" {
		if _, err := os.Stat(o.commandConfig); err != nil {
			return fmt.Errorf("Properties file %s does not exist.", o.commandConfig)
		}
	}
	if err := o.checkDescribe(); err != nil {
		return err
	}
	ctx, cancel := adminContext(cmd)
	defer cancel()
	q, err := o.query(ctx, cmd)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if o.status {
		return writeQuorumStatus(out, q.clusterID, q.resp)
	}
	return writeQuorumReplication(out, q.resp, o.humanReadable, time.Now())
}

// quorumAnswer is what the tool prints from: the cluster id (for --status)
// and the DescribeQuorum response.
type quorumAnswer struct {
	clusterID string
	resp      *kmsg.DescribeQuorumResponse
}

func (o *metadataQuorumOptions) query(ctx context.Context, cmd *cobra.Command) (*quorumAnswer, error) {
	conn := connFlags{settings: o.settings, configFile: o.commandConfig, bootstrap: o.bootstrapServer}
	if o.bootstrapController != "" {
		conn.bootstrap = o.bootstrapController
	}
	props, seeds, err := conn.clientProps()
	if err != nil {
		return nil, err
	}
	if o.bootstrapController != "" {
		return o.queryControllers(ctx, cmd, props, seeds)
	}
	cl, err := newClientFromProps(ctx, cmd, props, seeds)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var q quorumAnswer
	if o.status {
		dc, err := describeCluster(ctx, cl, 1)
		if err != nil {
			return nil, err
		}
		q.clusterID = dc.ClusterID
	}
	// Kafka sends DescribeQuorum to any broker (its least loaded node),
	// which forwards it to the active controller.
	var to kmsg.Requestor = cl
	if brokers := cl.DiscoveredBrokers(); len(brokers) > 0 {
		to = brokers[0]
	}
	q.resp, err = describeQuorum(ctx, to)
	return &q, err
}

// queryControllers is --bootstrap-controller: DescribeCluster for
// controllers to the given addresses, then DescribeQuorum to the active
// controller the answer names.
func (o *metadataQuorumOptions) queryControllers(ctx context.Context, cmd *cobra.Command, props map[string]string, seeds []string) (*quorumAnswer, error) {
	cl, connectTimeout, err := newUncheckedClient(cmd, props, seeds)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var (
		dc      *kmsg.DescribeClusterResponse
		via     *kgo.Broker
		lastErr error
	)
	for _, br := range cl.SeedBrokers() {
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		dc, lastErr = describeCluster(cctx, br, 2)
		cancel()
		if lastErr == nil {
			via = br
			break
		}
		var kafkaErr *kerr.Error
		if errors.As(lastErr, &kafkaErr) || ctx.Err() != nil {
			return nil, lastErr // an answer, or out of time: no point trying the next
		}
	}
	if via == nil {
		return nil, fmt.Errorf("cannot connect to %s: %v", strings.Join(seeds, ","), connectError(lastErr))
	}
	q := &quorumAnswer{clusterID: dc.ClusterID}
	// The active controller, at the address its controller listener gives.
	to := kmsg.Requestor(via)
	for _, c := range dc.Brokers {
		if c.NodeID != dc.ControllerID {
			continue
		}
		addr := net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
		if !containsAddr(seeds, addr) {
			active, _, err := newUncheckedClient(cmd, props, []string{addr})
			if err != nil {
				return nil, err
			}
			defer active.Close()
			to = active.SeedBrokers()[0]
		} else {
			for i, s := range seeds {
				if sameAddr(s, addr) {
					to = cl.SeedBrokers()[i]
				}
			}
		}
		break
	}
	q.resp, err = describeQuorum(ctx, to)
	return q, err
}

func containsAddr(list []string, addr string) bool {
	for _, s := range list {
		if sameAddr(s, addr) {
			return true
		}
	}
	return false
}

func sameAddr(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	return err1 == nil && err2 == nil && ap == bp && strings.EqualFold(ah, bh)
}

// describeCluster sends DescribeCluster for brokers (endpointType 1) or
// controllers (2), as Kafka's admin client does, and checks its error.
func describeCluster(ctx context.Context, to kmsg.Requestor, endpointType int8) (*kmsg.DescribeClusterResponse, error) {
	req := kmsg.NewPtrDescribeClusterRequest()
	req.EndpointType = endpointType
	resp, err := req.RequestWith(ctx, to)
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		msg := ""
		if resp.ErrorMessage != nil {
			msg = *resp.ErrorMessage
		}
		return nil, kafkaError(err, msg)
	}
	return resp, nil
}

// describeQuorum asks for __cluster_metadata-0 and checks the answer as
// Kafka's admin client does: no error at the top, one topic of that name
// with one partition 0, no partition error.
func describeQuorum(ctx context.Context, to kmsg.Requestor) (*kmsg.DescribeQuorumResponse, error) {
	req := kmsg.NewPtrDescribeQuorumRequest()
	t := kmsg.NewDescribeQuorumRequestTopic()
	t.Topic = metadataTopic
	p := kmsg.NewDescribeQuorumRequestTopicPartition()
	p.Partition = 0
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, to)
	if err != nil {
		return nil, err
	}
	if _, err := quorumPartition(resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// quorumPartition returns the one partition of a DescribeQuorum response,
// or the error the response carries.
func quorumPartition(resp *kmsg.DescribeQuorumResponse) (*kmsg.DescribeQuorumResponseTopicPartition, error) {
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		msg := ""
		if resp.ErrorMessage != nil {
			msg = *resp.ErrorMessage
		}
		return nil, kafkaError(err, msg)
	}
	if len(resp.Topics) != 1 || resp.Topics[0].Topic != metadataTopic {
		return nil, fmt.Errorf("the DescribeQuorum response does not describe %s", metadataTopic)
	}
	parts := resp.Topics[0].Partitions
	if len(parts) != 1 || parts[0].Partition != 0 {
		return nil, fmt.Errorf("the DescribeQuorum response does not describe %s-0", metadataTopic)
	}
	p := &parts[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		msg := ""
		if p.ErrorMessage != nil {
			msg = *p.ErrorMessage
		}
		return nil, kafkaError(err, msg)
	}
	return p, nil
}

type replicaState = kmsg.DescribeQuorumResponseTopicPartitionReplicaState

// quorumLeader finds the leader among the voters.
func quorumLeader(p *kmsg.DescribeQuorumResponseTopicPartition) (*replicaState, error) {
	for i := range p.CurrentVoters {
		if p.CurrentVoters[i].ReplicaID == p.LeaderID {
			return &p.CurrentVoters[i], nil
		}
	}
	return nil, fmt.Errorf("the quorum's leader %d is not among its voters (no leader elected?)", p.LeaderID)
}

// directoryID renders a directory id as Kafka prints a Uuid: URL-safe
// base64 without padding.
func directoryID(id [16]byte) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// writeQuorumStatus prints describe --status: Kafka's block of eight
// "Name:<padding>value" lines. MaxFollowerLag is the leader's log end offset
// less the lowest voter's; MaxFollowerLagTimeMs the difference of their
// last caught-up times (0 when the leader itself is that voter, -1 when
// either time is unknown).
func writeQuorumStatus(w io.Writer, clusterID string, resp *kmsg.DescribeQuorumResponse) error {
	p, err := quorumPartition(resp)
	if err != nil {
		return err
	}
	leader, err := quorumLeader(p)
	if err != nil {
		return err
	}
	// The first voter with the lowest log end offset, as Java's Stream.min.
	laggard := &p.CurrentVoters[0]
	for i := range p.CurrentVoters {
		if p.CurrentVoters[i].LogEndOffset < laggard.LogEndOffset {
			laggard = &p.CurrentVoters[i]
		}
	}
	lagTime := int64(-1)
	switch {
	case laggard == leader:
		lagTime = 0
	case leader.LastCaughtUpTimestamp != -1 && laggard.LastCaughtUpTimestamp != -1:
		lagTime = leader.LastCaughtUpTimestamp - laggard.LastCaughtUpTimestamp
	}
	endpoints := map[int32][]string{}
	for _, n := range resp.Nodes {
		for _, l := range n.Listeners {
			host := l.Host
			if strings.Contains(host, ":") {
				host = "[" + host + "]"
			}
			endpoints[n.NodeID] = append(endpoints[n.NodeID], fmt.Sprintf("%s://%s:%d", l.Name, host, l.Port))
		}
	}
	_, err = fmt.Fprintf(w, "ClusterId:              %s\n"+
		"LeaderId:               %d\n"+
		"LeaderEpoch:            %d\n"+
		"HighWatermark:          %d\n"+
		"MaxFollowerLag:         %d\n"+
		"MaxFollowerLagTimeMs:   %d\n"+
		"CurrentVoters:          %s\n"+
		"CurrentObservers:       %s\n",
		clusterID, p.LeaderID, p.LeaderEpoch, p.HighWatermark,
		leader.LogEndOffset-laggard.LogEndOffset, lagTime,
		replicaList(p.CurrentVoters, endpoints), replicaList(p.Observers, endpoints))
	return err
}

// replicaList renders replicas as Kafka's status does:
// [{"id": 1, "directoryId": "…", "endpoints": ["CONTROLLER://host:port"]}, …],
// leaving out a zero directory id and an empty endpoint list.
func replicaList(replicas []replicaState, endpoints map[int32][]string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, r := range replicas {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `{"id": %d`, r.ReplicaID)
		if r.ReplicaDirectoryID != [16]byte{} {
			fmt.Fprintf(&b, `, "directoryId": "%s"`, directoryID(r.ReplicaDirectoryID))
		}
		if eps := endpoints[r.ReplicaID]; len(eps) > 0 {
			b.WriteString(`, "endpoints": [`)
			for j, e := range eps {
				if j > 0 {
					b.WriteString(", ")
				}
				b.WriteString(`"` + e + `"`)
			}
			b.WriteByte(']')
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.String()
}

// writeQuorumReplication prints describe --replication: the leader, the
// other voters, then the observers, one row each. Lag is the leader's log
// end offset less the replica's. An unknown timestamp (-1) prints as -1
// even with humanReadable; a known one as "N ms ago" relative to now.
func writeQuorumReplication(w io.Writer, resp *kmsg.DescribeQuorumResponse, humanReadable bool, now time.Time) error {
	p, err := quorumPartition(resp)
	if err != nil {
		return err
	}
	leader, err := quorumLeader(p)
	if err != nil {
		return err
	}
	nowMs := now.UnixMilli()
	stamp := func(ts int64, desc string) (string, error) {
		switch {
		case ts == -1:
			return "-1", nil
		case !humanReadable:
			return strconv.FormatInt(ts, 10), nil
		case ts <= 0 || ts > nowMs:
			return "", fmt.Errorf("Error while computing relative time, possible drift in system clock.\n"+
				"Current timestamp is %d, %s timestamp is %d", nowMs, desc, ts)
		}
		return fmt.Sprintf("%d ms ago", nowMs-ts), nil
	}
	var rows [][]string
	add := func(r *replicaState, status string) error {
		fetch, err := stamp(r.LastFetchTimestamp, "last fetch")
		if err != nil {
			return err
		}
		caught, err := stamp(r.LastCaughtUpTimestamp, "last caught up")
		if err != nil {
			return err
		}
		rows = append(rows, []string{
			strconv.Itoa(int(r.ReplicaID)),
			directoryID(r.ReplicaDirectoryID),
			strconv.FormatInt(r.LogEndOffset, 10),
			strconv.FormatInt(leader.LogEndOffset-r.LogEndOffset, 10),
			fetch, caught, status,
		})
		return nil
	}
	if err := add(leader, "Leader"); err != nil {
		return err
	}
	for i := range p.CurrentVoters {
		if p.CurrentVoters[i].ReplicaID != p.LeaderID {
			if err := add(&p.CurrentVoters[i], "Follower"); err != nil {
				return err
			}
		}
	}
	for i := range p.Observers {
		if err := add(&p.Observers[i], "Observer"); err != nil {
			return err
		}
	}
	header := []string{"NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp", "Status"}
	return writeToolsTable(w, header, rows)
}

// writeToolsTable prints a table as Kafka's tools do: each cell padded on
// the right to its column's widest entry and followed by a tab, the last
// one too.
func writeToolsTable(w io.Writer, header []string, rows [][]string) error {
	widths := make([]int, len(header))
	for _, row := range append([][]string{header}, rows...) {
		for i, cell := range row {
			if i < len(widths) && len(cell) > widths[i] {
				widths[i] = len(cell)
			}
		}
	}
	var b strings.Builder
	for _, row := range append([][]string{header}, rows...) {
		for i, cell := range row {
			if i < len(widths) {
				b.WriteString(cell)
				b.WriteString(strings.Repeat(" ", widths[i]-len(cell)))
				b.WriteByte('\t')
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
