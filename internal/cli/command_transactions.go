package cli

// gregor transactions: kafka-transactions.sh (Kafka 4.4's TransactionsCommand).
//
// Subcommands and flags are Kafka's: list (--duration-filter,
// --transactional-id-pattern), describe (--transactional-id),
// describe-producers (--topic, --partition, --broker-id), abort (--topic,
// --partition and either --start-offset or --producer-id, --producer-epoch,
// --coordinator-epoch), find-hanging (--topic, --partition, --broker-id,
// --max-transaction-timeout) and forceTerminateTransaction
// (--transactionalId). The connection flags (--bootstrap-server,
// --command-config, -X) may come before or after the subcommand.
//
// Output is Kafka's table: every cell, the last included, is padded with
// spaces to its column's widest value (header included) and followed by a
// tab. "None" marks a missing start offset or start time, as Kafka prints
// it. Rows keep the order of the brokers' answers, as Kafka's do (list:
// coordinators in ascending id); where Kafka's order comes from a hash set
// they are sorted instead (find-hanging: by topic, partition, producer id;
// the partitions of describe by topic and partition). Failures print Kafka's sentence
// ("Failed to describe producers for partition t-0 on leader: ...") with
// the broker's error after the colon.
//
// abort writes an abort marker (WriteTxnMarkers) to the partition's leader,
// as Kafka's Admin.abortTransaction does; with --start-offset it first finds
// the open transaction that starts there with DescribeProducers.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnCommand is what every transactions subcommand shares: the connection
// flags (persistent, on the parent) and a clock, fixed in tests.
type txnCommand struct {
	conn connFlags
	now  func() time.Time
}

func newTransactionsCommand() *cobra.Command {
	tc := &txnCommand{now: time.Now}
	cmd := &cobra.Command{
		Use:   "transactions COMMAND",
		Short: "Inspect transactions and abort hanging ones (kafka-transactions.sh)",
		Long: `Analyze the transactional state of producers in the cluster, and detect and
recover from hanging transactions (kafka-transactions.sh).`,
		Example: `  gregor transactions --bootstrap-server localhost:9092 list
  gregor transactions describe --transactional-id my-txn
  gregor transactions describe-producers --topic orders --partition 0
  gregor transactions find-hanging --broker-id 1
  gregor transactions abort --topic orders --partition 0 --start-offset 42`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	tc.conn.AddFlags(cmd.PersistentFlags(), "command-config")
	cmd.AddCommand(
		tc.listCommand(),
		tc.describeCommand(),
		tc.describeProducersCommand(),
		tc.abortCommand(),
		tc.findHangingCommand(),
		tc.forceTerminateCommand(),
	)
	return cmd
}

// admin connects; the caller closes the client.
func (tc *txnCommand) admin(cmd *cobra.Command) (*adminClient, context.Context, context.CancelFunc, error) {
	ctx, cancel := adminContext(cmd)
	adm, err := newAdmin(ctx, cmd, &tc.conn)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return adm, ctx, cancel, nil
}

// txnFailure is Kafka's "<what>: <cause>." error line.
func txnFailure(what string, err error) error {
	msg := err.Error()
	var ke *kerr.Error
	if errors.As(err, &ke) && ke.Description != "" {
		msg = ke.Description
	}
	var be *brokerError
	if errors.As(err, &be) {
		msg = be.msg
	}
	return fmt.Errorf("%s: %s", what, strings.TrimSuffix(msg, "."))
}

// printTable writes Kafka's tools table (ToolsUtils.prettyPrintTable):
// each cell is padded to its column's width and followed by a tab.
func printTable(w io.Writer, headers []string, rows [][]string) {
	widths := make([]int, len(headers))
	for i, h := range headers {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.Reset()
		for i, c := range cells {
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)))
			b.WriteByte('\t')
		}
		b.WriteByte('\n')
		io.WriteString(w, b.String())
	}
	line(headers)
	for _, row := range rows {
		line(row)
	}
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

// noneIfNegative prints Kafka's "None" for an absent offset or time.
func noneIfNegative(n int64) string {
	if n < 0 {
		return "None"
	}
	return i64(n)
}

// txnStates are the transaction states Kafka's admin client knows; any
// other string a broker sends prints as Unknown, as in Kafka.
var txnStates = map[string]bool{
	"Ongoing": true, "PrepareAbort": true, "PrepareCommit": true, "CompleteAbort": true,
	"CompleteCommit": true, "Empty": true, "PrepareEpochFence": true,
}

func txnState(s string) string {
	if txnStates[s] {
		return s
	}
	return "Unknown"
}

// ---- list ----

var listTxnHeaders = []string{"TransactionalId", "Coordinator", "ProducerId", "TransactionState"}

// listedTxn is one row of list: a ListTransactions entry and the broker
// (its coordinator) that answered it.
type listedTxn struct {
	coordinator int32
	kmsg.ListTransactionsResponseTransactionState
}

func listTxnRows(txns []listedTxn) [][]string {
	sort.SliceStable(txns, func(i, j int) bool { return txns[i].coordinator < txns[j].coordinator })
	rows := make([][]string, 0, len(txns))
	for _, t := range txns {
		rows = append(rows, []string{t.TransactionalID, strconv.Itoa(int(t.coordinator)), i64(t.ProducerID), txnState(t.TransactionState)})
	}
	return rows
}

// listTransactions asks every broker (each is the coordinator of some
// transactional ids). kadm has no duration filter, so the request is built
// here; the filters need ListTransactions v1 (duration) and v2 (pattern).
func listTransactions(ctx context.Context, cl *kgo.Client, producerIDs []int64, durationMs int64, pattern string) ([]listedTxn, error) {
	req := kmsg.NewPtrListTransactionsRequest()
	req.ProducerIDFilters = producerIDs
	req.DurationFilterMillis = durationMs
	if pattern != "" {
		req.TransactionalIDPattern = &pattern
	}
	var out []listedTxn
	for _, shard := range cl.RequestSharded(ctx, req) {
		if shard.Err != nil {
			return nil, shard.Err
		}
		resp := shard.Resp.(*kmsg.ListTransactionsResponse)
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return nil, err
		}
		if durationMs >= 0 && resp.Version < 1 {
			return nil, errors.New("the broker does not support filtering transactions by duration")
		}
		if pattern != "" && resp.Version < 2 {
			return nil, errors.New("the broker does not support filtering transactions by transactional id pattern")
		}
		for _, t := range resp.TransactionStates {
			out = append(out, listedTxn{shard.Meta.NodeID, t})
		}
	}
	return out, nil
}

func (tc *txnCommand) listCommand() *cobra.Command {
	var durationMs int64
	var pattern string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list transactions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			adm, ctx, cancel, err := tc.admin(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			defer adm.Close()
			if !cmd.Flags().Changed("duration-filter") {
				durationMs = -1
			}
			txns, err := listTransactions(ctx, adm.cl, nil, durationMs, pattern)
			if err != nil {
				return txnFailure("Failed to list transactions", err)
			}
			printTable(cmd.OutOrStdout(), listTxnHeaders, listTxnRows(txns))
			return nil
		},
	}
	cmd.Flags().Int64Var(&durationMs, "duration-filter", -1, "Duration (in millis) to filter by: if < 0, all transactions; otherwise only transactions running longer than this")
	cmd.Flags().StringVar(&pattern, "transactional-id-pattern", "", "regular expression of the transactional ids to list")
	return cmd
}

// ---- describe ----

var describeTxnHeaders = []string{"CoordinatorId", "TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState",
	"TransactionTimeoutMs", "CurrentTransactionStartTimeMs", "TransactionDurationMs", "TopicPartitions"}

func describeTxnRow(d kadm.DescribedTransaction, now time.Time) []string {
	start, duration := "None", "None"
	if d.StartTimestamp >= 0 {
		start = i64(d.StartTimestamp)
		duration = i64(now.UnixMilli() - d.StartTimestamp)
	}
	var parts []string
	for _, tp := range d.Topics.Sorted() {
		for _, p := range tp.Partitions {
			parts = append(parts, fmt.Sprintf("%s-%d", tp.Topic, p))
		}
	}
	return []string{strconv.Itoa(int(d.Coordinator)), d.TxnID, i64(d.ProducerID), strconv.Itoa(int(d.ProducerEpoch)),
		txnState(d.State), strconv.Itoa(int(d.TimeoutMillis)), start, duration, strings.Join(parts, ",")}
}

func (tc *txnCommand) describeCommand() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "describe --transactional-id ID",
		Short: "describe the state of an active transactional-id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			adm, ctx, cancel, err := tc.admin(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			defer adm.Close()
			what := "Failed to describe transaction state of transactional-id `" + id + "`"
			ds, err := adm.DescribeTransactions(ctx, id)
			if err != nil {
				return txnFailure(what, err)
			}
			d, ok := ds[id]
			if !ok {
				return txnFailure(what, errors.New("no answer for this transactional id"))
			}
			if d.Err != nil {
				return txnFailure(what, d.Err)
			}
			printTable(cmd.OutOrStdout(), describeTxnHeaders, [][]string{describeTxnRow(d, tc.now())})
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "transactional-id", "", "transactional id")
	_ = cmd.MarkFlagRequired("transactional-id")
	return cmd
}

// ---- describe-producers ----

var describeProducersHeaders = []string{"ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence", "LastTimestamp", "CurrentTransactionStartOffset"}

func producerRows(ps []kmsg.DescribeProducersResponseTopicPartitionActiveProducer) [][]string {
	rows := make([][]string, 0, len(ps))
	for _, p := range ps {
		rows = append(rows, []string{i64(p.ProducerID), strconv.Itoa(int(p.ProducerEpoch)), strconv.Itoa(int(max(p.CoordinatorEpoch, -1))),
			strconv.Itoa(int(p.LastSequence)), i64(p.LastTimestamp), noneIfNegative(p.CurrentTxnStartOffset)})
	}
	return rows
}

// describeProducers asks the partitions' leaders or, with brokerID >= 0,
// that one broker (about its replicas, leader or follower), as Kafka's
// DescribeProducersOptions.brokerId does. A partition's own error fails it.
func describeProducers(ctx context.Context, cl *kgo.Client, brokerID int32, tps map[string][]int32) (map[string]map[int32][]kmsg.DescribeProducersResponseTopicPartitionActiveProducer, error) {
	req := kmsg.NewPtrDescribeProducersRequest()
	topics := make([]string, 0, len(tps))
	for t := range tps {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		rt := kmsg.NewDescribeProducersRequestTopic()
		rt.Topic, rt.Partitions = t, tps[t]
		req.Topics = append(req.Topics, rt)
	}
	var resps []kmsg.Response
	if brokerID >= 0 {
		resp, err := cl.Broker(int(brokerID)).Request(ctx, req)
		if err != nil {
			return nil, err
		}
		resps = append(resps, resp)
	} else {
		for _, shard := range cl.RequestSharded(ctx, req) {
			if shard.Err != nil {
				return nil, shard.Err
			}
			resps = append(resps, shard.Resp)
		}
	}
	out := map[string]map[int32][]kmsg.DescribeProducersResponseTopicPartitionActiveProducer{}
	for _, r := range resps {
		for _, rt := range r.(*kmsg.DescribeProducersResponse).Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					return nil, kafkaError(err, strPtr(rp.ErrorMessage))
				}
				if out[rt.Topic] == nil {
					out[rt.Topic] = map[int32][]kmsg.DescribeProducersResponseTopicPartitionActiveProducer{}
				}
				out[rt.Topic][rp.Partition] = rp.ActiveProducers
			}
		}
	}
	return out, nil
}

func strPtr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (tc *txnCommand) describeProducersCommand() *cobra.Command {
	var topic string
	var partition, brokerID int32
	cmd := &cobra.Command{
		Use:   "describe-producers --topic T --partition P [--broker-id B]",
		Short: "describe the states of active producers for a topic partition",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("broker-id") {
				brokerID = -1
			}
			adm, ctx, cancel, err := tc.admin(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			defer adm.Close()
			on := "leader"
			if brokerID >= 0 {
				on = fmt.Sprintf("broker %d", brokerID)
			}
			what := fmt.Sprintf("Failed to describe producers for partition %s-%d on %s", topic, partition, on)
			if err := checkPartition(ctx, adm, topic, partition); err != nil {
				return txnFailure(what, err)
			}
			res, err := describeProducers(ctx, adm.cl, brokerID, map[string][]int32{topic: {partition}})
			if err != nil {
				return txnFailure(what, err)
			}
			ps, ok := res[topic][partition]
			if !ok {
				return txnFailure(what, errors.New("no answer for this partition"))
			}
			printTable(cmd.OutOrStdout(), describeProducersHeaders, producerRows(ps))
			return nil
		},
	}
	f := cmd.Flags()
	f.Int32Var(&brokerID, "broker-id", -1, "optional broker id to describe the producer state on a specific replica")
	f.StringVar(&topic, "topic", "", "topic name")
	f.Int32Var(&partition, "partition", 0, "partition number")
	_ = cmd.MarkFlagRequired("topic")
	_ = cmd.MarkFlagRequired("partition")
	return cmd
}

// checkPartition fails fast on a partition that does not exist; Kafka's
// admin client would retry its metadata lookup until the timeout.
func checkPartition(ctx context.Context, adm *adminClient, topic string, partition int32) error {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return err
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return kerr.UnknownTopicOrPartition
	}
	if _, ok := td.Partitions[partition]; !ok {
		return kerr.UnknownTopicOrPartition
	}
	return nil
}

// ---- abort ----

// abortSpec is the marker to write; its String is Kafka's
// AbortTransactionSpec rendering, which Kafka's error line shows.
type abortSpec struct {
	topic            string
	partition        int32
	producerID       int64
	producerEpoch    int16
	coordinatorEpoch int32
}

func (s abortSpec) String() string {
	return fmt.Sprintf("AbortTransactionSpec(topicPartition=%s-%d, producerId=%d, producerEpoch=%d, coordinatorEpoch=%d)",
		s.topic, s.partition, s.producerID, s.producerEpoch, s.coordinatorEpoch)
}

func (tc *txnCommand) abortCommand() *cobra.Command {
	var spec abortSpec
	var startOffset int64
	cmd := &cobra.Command{
		Use:   "abort --topic T --partition P (--start-offset O | --producer-id I --producer-epoch E --coordinator-epoch C)",
		Short: "abort a hanging transaction (requires administrative privileges)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			changed := cmd.Flags().Changed
			switch {
			case !changed("start-offset") && !changed("producer-id"):
				return errors.New("The transaction to abort must be identified either with --start-offset (for brokers on 3.0 or above) or with --producer-id, --producer-epoch, and --coordinator-epoch (for older brokers)")
			case !changed("start-offset") && !changed("producer-epoch"):
				return errors.New("Missing required argument --producer-epoch")
			case !changed("start-offset") && !changed("coordinator-epoch"):
				return errors.New("Missing required argument --coordinator-epoch")
			}
			adm, ctx, cancel, err := tc.admin(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			defer adm.Close()
			if changed("start-offset") {
				if spec, err = findOpenTxn(ctx, adm, spec.topic, spec.partition, startOffset); err != nil {
					return err
				}
			} else if spec.coordinatorEpoch < 0 {
				// A transaction that hung before its first marker has
				// no coordinator epoch (-1); 0 is at most any real one.
				spec.coordinatorEpoch = 0
			}
			if err := writeAbortMarker(ctx, adm, spec); err != nil {
				return txnFailure("Failed to abort transaction "+spec.String(), err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.topic, "topic", "", "topic name")
	f.Int32Var(&spec.partition, "partition", 0, "partition number")
	f.Int64Var(&startOffset, "start-offset", 0, "start offset of the transaction to abort (brokers on 3.0 and above)")
	f.Int64Var(&spec.producerID, "producer-id", 0, "producer id (brokers older than 3.0)")
	f.Int16Var(&spec.producerEpoch, "producer-epoch", 0, "producer epoch (brokers older than 3.0)")
	f.Int32Var(&spec.coordinatorEpoch, "coordinator-epoch", 0, "coordinator epoch (brokers older than 3.0)")
	_ = cmd.MarkFlagRequired("topic")
	_ = cmd.MarkFlagRequired("partition")
	return cmd
}

// findOpenTxn builds the abort from the producer whose open transaction on
// the partition starts at startOffset.
func findOpenTxn(ctx context.Context, adm *adminClient, topic string, partition int32, startOffset int64) (abortSpec, error) {
	what := fmt.Sprintf("Failed to validate producer state for partition %s-%d", topic, partition)
	if err := checkPartition(ctx, adm, topic, partition); err != nil {
		return abortSpec{}, txnFailure(what, err)
	}
	res, err := describeProducers(ctx, adm.cl, -1, map[string][]int32{topic: {partition}})
	if err != nil {
		return abortSpec{}, txnFailure(what, err)
	}
	ps := res[topic][partition]
	sort.Slice(ps, func(i, j int) bool { return ps[i].ProducerID < ps[j].ProducerID })
	for _, p := range ps {
		if p.CurrentTxnStartOffset >= 0 && p.CurrentTxnStartOffset == startOffset {
			return abortSpec{topic: topic, partition: partition, producerID: p.ProducerID,
				producerEpoch: int16(p.ProducerEpoch), coordinatorEpoch: max(p.CoordinatorEpoch, 0)}, nil
		}
	}
	return abortSpec{}, fmt.Errorf("Could not find any open transactions starting at offset %d on partition %s-%d", startOffset, topic, partition)
}

// writeAbortMarker writes the abort marker at the partition's leader.
func writeAbortMarker(ctx context.Context, adm *adminClient, s abortSpec) error {
	var ts kadm.TopicsSet
	ts.Add(s.topic, s.partition)
	resps, err := adm.WriteTxnMarkers(ctx, kadm.TxnMarkers{
		ProducerID: s.producerID, ProducerEpoch: s.producerEpoch, CoordinatorEpoch: s.coordinatorEpoch, Topics: ts,
	})
	if err != nil {
		return err
	}
	p, ok := resps[s.producerID].Topics[s.topic].Partitions[s.partition]
	if !ok {
		return errors.New("the broker did not answer for the partition")
	}
	return p.Err
}

// ---- find-hanging ----

var findHangingHeaders = []string{"Topic", "Partition", "ProducerId", "ProducerEpoch", "CoordinatorEpoch", "StartOffset", "LastTimestamp", "Duration(min)"}

// openTxn is a transaction a partition reports open.
type openTxn struct {
	topic     string
	partition int32
	kmsg.DescribeProducersResponseTopicPartitionActiveProducer
}

func hangingRows(txns []openTxn, now time.Time) [][]string {
	sort.Slice(txns, func(i, j int) bool {
		a, b := txns[i], txns[j]
		if a.topic != b.topic {
			return a.topic < b.topic
		}
		if a.partition != b.partition {
			return a.partition < b.partition
		}
		return a.ProducerID < b.ProducerID
	})
	rows := make([][]string, 0, len(txns))
	for _, t := range txns {
		minutes := (now.UnixMilli() - t.LastTimestamp) / 60000
		rows = append(rows, []string{t.topic, strconv.Itoa(int(t.partition)), i64(t.ProducerID), strconv.Itoa(int(t.ProducerEpoch)),
			strconv.Itoa(int(max(t.CoordinatorEpoch, -1))), i64(max(t.CurrentTxnStartOffset, -1)), i64(t.LastTimestamp), i64(minutes)})
	}
	return rows
}

// hangingOnly keeps the open transactions that no coordinator will finish:
// their producer has no transactional id any more, or its transaction no
// longer includes the partition (DescribeTransactions lists the partitions
// of an ongoing transaction and those still waiting for markers).
func hangingOnly(open []openTxn, idOf map[int64]string, described map[string]kadm.DescribedTransaction) []openTxn {
	var out []openTxn
	for _, t := range open {
		id, ok := idOf[t.ProducerID]
		if !ok {
			out = append(out, t)
			continue
		}
		d, ok := described[id]
		if !ok {
			out = append(out, t)
			continue
		}
		if ps, ok := d.Topics[t.topic]; !ok || !hasPartition(ps, t.partition) {
			out = append(out, t)
		}
	}
	return out
}

func hasPartition(ps map[int32]struct{}, p int32) bool {
	_, ok := ps[p]
	return ok
}

func (tc *txnCommand) findHangingCommand() *cobra.Command {
	var topic string
	var partition, brokerID int32
	var maxTimeoutMin int32
	cmd := &cobra.Command{
		Use:   "find-hanging (--broker-id B | --topic T [--partition P]) [--max-transaction-timeout M]",
		Short: "find hanging transactions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			changed := cmd.Flags().Changed
			if !changed("broker-id") {
				brokerID = -1
			}
			switch {
			case topic == "" && brokerID < 0:
				return errors.New("The `find-hanging` command requires either --topic or --broker-id to limit the scope of the search")
			case changed("partition") && topic == "":
				return errors.New("The --partition argument requires --topic to be provided")
			}
			adm, ctx, cancel, err := tc.admin(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			defer adm.Close()
			tps, err := hangingScope(ctx, adm, topic, partition, changed("partition"), brokerID)
			if err != nil {
				return err
			}
			open, err := candidateTxns(ctx, adm, brokerID, tps, time.Duration(maxTimeoutMin)*time.Minute, tc.now())
			if err != nil {
				return err
			}
			var hanging []openTxn
			if len(open) > 0 {
				pidSet := map[int64]bool{}
				var pids []int64
				for _, t := range open {
					if !pidSet[t.ProducerID] {
						pidSet[t.ProducerID] = true
						pids = append(pids, t.ProducerID)
					}
				}
				listed, err := listTransactions(ctx, adm.cl, pids, -1, "")
				if err != nil {
					return txnFailure(fmt.Sprintf("Failed to list transactions for %d producers", len(pids)), err)
				}
				idOf := map[int64]string{}
				var ids []string
				for _, l := range listed {
					if pidSet[l.ProducerID] {
						idOf[l.ProducerID] = l.TransactionalID
						ids = append(ids, l.TransactionalID)
					}
				}
				described := map[string]kadm.DescribedTransaction{}
				if len(ids) > 0 {
					ds, err := adm.DescribeTransactions(ctx, ids...)
					if err != nil {
						return txnFailure(fmt.Sprintf("Failed to describe %d transactions", len(ids)), err)
					}
					for id, d := range ds {
						switch {
						case d.Err == nil:
							described[id] = d
						case errors.Is(d.Err, kerr.TransactionalIDNotFound):
						default:
							return txnFailure(fmt.Sprintf("Failed to describe %d transactions", len(ids)), d.Err)
						}
					}
				}
				hanging = hangingOnly(open, idOf, described)
			}
			printTable(cmd.OutOrStdout(), findHangingHeaders, hangingRows(hanging, tc.now()))
			return nil
		},
	}
	f := cmd.Flags()
	f.Int32Var(&brokerID, "broker-id", -1, "broker id to search for hanging transactions")
	f.Int32Var(&maxTimeoutMin, "max-transaction-timeout", 15, "maximum transaction timeout in minutes to limit the scope of the search")
	f.StringVar(&topic, "topic", "", "topic name to limit search to (required if --partition is specified)")
	f.Int32Var(&partition, "partition", 0, "partition number")
	return cmd
}

// hangingScope is the partitions to search: the one given, the topic's, or
// every partition (internal topics included) with a replica on brokerID.
func hangingScope(ctx context.Context, adm *adminClient, topic string, partition int32, onePartition bool, brokerID int32) (map[string][]int32, error) {
	if topic != "" && onePartition {
		return map[string][]int32{topic: {partition}}, nil
	}
	var topics []string
	if topic != "" {
		topics = []string{topic}
	}
	md, err := adm.Metadata(ctx, topics...)
	if err != nil {
		what := "Failed to list topics"
		if topic != "" {
			what = "Failed to describe 1 topics"
		}
		return nil, txnFailure(what, err)
	}
	tps := map[string][]int32{}
	for _, td := range md.Topics.Sorted() {
		if errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			return nil, txnFailure(fmt.Sprintf("Failed to describe %d topics", len(md.Topics)), fmt.Errorf("topic '%s' does not exist", td.Topic))
		}
		if td.Err != nil {
			return nil, txnFailure(fmt.Sprintf("Failed to describe %d topics", len(md.Topics)), td.Err)
		}
		for _, pd := range td.Partitions.Sorted() {
			if brokerID < 0 || hasReplica(pd.Replicas, brokerID) {
				tps[td.Topic] = append(tps[td.Topic], pd.Partition)
			}
		}
	}
	return tps, nil
}

func hasReplica(replicas []int32, id int32) bool {
	for _, r := range replicas {
		if r == id {
			return true
		}
	}
	return false
}

// candidateTxns are the open transactions whose producer has written
// nothing for longer than the maximum transaction timeout. Requests carry
// at most 500 partitions, as Kafka's tool sends.
func candidateTxns(ctx context.Context, adm *adminClient, brokerID int32, tps map[string][]int32, maxTimeout time.Duration, now time.Time) ([]openTxn, error) {
	type tp struct {
		t string
		p int32
	}
	var all []tp
	for t, ps := range tps {
		for _, p := range ps {
			all = append(all, tp{t, p})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].t < all[j].t || all[i].t == all[j].t && all[i].p < all[j].p })
	var out []openTxn
	for len(all) > 0 {
		n := min(len(all), 500)
		batch := map[string][]int32{}
		for _, x := range all[:n] {
			batch[x.t] = append(batch[x.t], x.p)
		}
		all = all[n:]
		res, err := describeProducers(ctx, adm.cl, brokerID, batch)
		if err != nil {
			return nil, txnFailure(fmt.Sprintf("Failed to describe producers for %d partitions on broker %s", n, optionalBroker(brokerID)), err)
		}
		for t, parts := range res {
			for p, ps := range parts {
				for _, pr := range ps {
					if pr.CurrentTxnStartOffset >= 0 && now.UnixMilli()-pr.LastTimestamp > maxTimeout.Milliseconds() {
						out = append(out, openTxn{t, p, pr})
					}
				}
			}
		}
	}
	return out, nil
}

// optionalBroker renders the broker id as Kafka prints its Optional.
func optionalBroker(id int32) string {
	if id < 0 {
		return "Optional.empty"
	}
	return fmt.Sprintf("Optional[%d]", id)
}

// ---- forceTerminateTransaction ----

// forceTerminateCommand ends whatever transaction the id has open, as
// Kafka 4.x's forceTerminateTransaction does: an InitProducerId for the
// transactional id at its coordinator bumps the producer epoch, which
// fences the producer and aborts its ongoing transaction.
func (tc *txnCommand) forceTerminateCommand() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "forceTerminateTransaction --transactionalId ID",
		Short: "Force abort an ongoing transaction on transactionalId (requires administrative privileges)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			adm, ctx, cancel, err := tc.admin(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			defer adm.Close()
			req := kmsg.NewPtrInitProducerIDRequest()
			req.TransactionalID = &id
			req.TransactionTimeoutMillis = int32(time.Minute / time.Millisecond)
			req.ProducerID, req.ProducerEpoch = -1, -1
			resp, err := req.RequestWith(ctx, adm.cl)
			if err == nil {
				err = kerr.ErrorForCode(resp.ErrorCode)
			}
			if err != nil {
				return txnFailure("Failed to force terminate transactionalId `"+id+"`", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "transactionalId", "", "transactional id")
	_ = cmd.MarkFlagRequired("transactionalId")
	return cmd
}
