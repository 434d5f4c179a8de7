package cli

// gregor reassign-partitions: kafka-reassign-partitions.sh (Kafka's
// ReassignPartitionsCommand), with its flags, JSON formats and output:
//
//	--generate --topics-to-move-json-file F --broker-list 1,2,3
//	    prints the current assignment of the topics in F
//	    ({"version":1,"topics":[{"topic":"t"}]}) and a proposal spreading
//	    them over the brokers (round robin from a random start, as Kafka's
//	    placement without racks; --disable-rack-aware is accepted).
//	--execute --reassignment-json-file F [--additional] [--throttle B]
//	    prints the current assignment for rollback, then starts the
//	    reassignments (AlterPartitionReassignments, key 45). Refused while
//	    others are in progress unless --additional. --throttle sets the
//	    replication throttles as Kafka's tool does (setThrottles) and prints
//	    Kafka's warning.
//	--verify --reassignment-json-file F [--preserve-throttles]
//	    "Status of partition reassignment:" with one line per partition,
//	    then, when none is in progress, clears the throttle configs as
//	    Kafka does (IncrementalAlterConfigs deletes).
//	--cancel --reassignment-json-file F [--preserve-throttles]
//	--list
//	    the reassignments in progress (ListPartitionReassignments, key 46).
//
// Replica moves between log dirs (log_dirs other than "any") are refused:
// Gregor has one log dir per broker.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type reassignOptions struct {
	conn                                       connFlags
	generate, execute, verify, list, cancel    bool
	topicsFile, reassignFile, brokerList       string
	throttle, logDirThrottle, timeout          int64
	additional, preserveThrottles, noRackAware bool
}

func newReassignPartitionsCommand() *cobra.Command {
	o := &reassignOptions{}
	cmd := &cobra.Command{
		Use:   "reassign-partitions --bootstrap-server HOST:PORT (--generate | --execute | --verify | --cancel | --list) ...",
		Short: "Move partitions between brokers (kafka-reassign-partitions.sh)",
		Long:  "This tool helps to move topic partitions between replicas.",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.conn.bootstrap, "bootstrap-server", "", "the broker(s) to connect to, host:port[,host:port] (default "+defaultBootstrap+")")
	f.StringVar(&o.conn.configFile, "command-config", "", "property file with admin client settings")
	f.StringArrayVarP(&o.conn.settings, "X", "X", nil, "client setting key=value with Kafka's client property names (repeatable)")
	f.BoolVar(&o.generate, "generate", false, "generate a candidate reassignment for the topics of --topics-to-move-json-file over --broker-list")
	f.BoolVar(&o.execute, "execute", false, "start the reassignment of --reassignment-json-file")
	f.BoolVar(&o.verify, "verify", false, "check the reassignment of --reassignment-json-file")
	f.BoolVar(&o.cancel, "cancel", false, "cancel the reassignments of --reassignment-json-file")
	f.BoolVar(&o.list, "list", false, "list the reassignments in progress")
	f.StringVar(&o.topicsFile, "topics-to-move-json-file", "", `with --generate: {"version":1,"topics":[{"topic":"foo"}]}`)
	f.StringVar(&o.reassignFile, "reassignment-json-file", "", `{"version":1,"partitions":[{"topic":"foo","partition":0,"replicas":[1,2],"log_dirs":["any","any"]}]}`)
	f.StringVar(&o.brokerList, "broker-list", "", "with --generate: the broker ids to reassign to, 1,2,3")
	f.Int64Var(&o.throttle, "throttle", -1, "with --execute: inter-broker replication throttle in B/s")
	f.Int64Var(&o.logDirThrottle, "replica-alter-log-dirs-throttle", -1, "with --execute: log dir move throttle in B/s (accepted)")
	f.Int64Var(&o.timeout, "timeout", 10000, "with --execute: ms to wait for log dir moves to start")
	f.BoolVar(&o.additional, "additional", false, "with --execute: start even though other reassignments are in progress")
	f.BoolVar(&o.preserveThrottles, "preserve-throttles", false, "with --verify or --cancel: leave the throttles")
	f.BoolVar(&o.noRackAware, "disable-rack-aware", false, "with --generate: ignore racks")
	return cmd
}

func (o *reassignOptions) run(cmd *cobra.Command) error {
	n := 0
	for _, b := range []bool{o.generate, o.execute, o.verify, o.cancel, o.list} {
		if b {
			n++
		}
	}
	if n != 1 {
		return errors.New("Command must include exactly one action: --generate, --execute, --verify, --cancel, --list")
	}
	switch {
	case (o.execute || o.verify || o.cancel) && o.reassignFile == "":
		return errors.New("Missing required argument \"[reassignment-json-file]\"")
	case o.generate && o.topicsFile == "":
		return errors.New("Missing required argument \"[topics-to-move-json-file]\"")
	case o.generate && o.brokerList == "":
		return errors.New("Missing required argument \"[broker-list]\"")
	}
	var input []byte
	if file := o.reassignFile + o.topicsFile; !o.list && file != "" {
		var err error
		if input, err = os.ReadFile(file); err != nil {
			return err
		}
	}
	ctx, cancel := adminContext(cmd)
	defer cancel()
	adm, err := newAdmin(ctx, cmd, &o.conn)
	if err != nil {
		return err
	}
	defer adm.Close()
	out := &bytes.Buffer{}
	defer func() { cmd.OutOrStdout().Write(out.Bytes()) }()
	switch {
	case o.list:
		return listReassignments(ctx, adm, out)
	case o.generate:
		return o.runGenerate(ctx, adm, out, input)
	case o.execute:
		return o.runExecute(ctx, adm, out, input)
	case o.verify:
		return o.runVerify(ctx, adm, out, input)
	default:
		return o.runCancel(ctx, adm, out, input)
	}
}

// tpKey is a topic partition, ordered by topic then partition.
type tpKey struct {
	Topic     string
	Partition int32
}

func (k tpKey) String() string { return k.Topic + "-" + strconv.Itoa(int(k.Partition)) }

func sortKeys(ks []tpKey) {
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].Topic != ks[j].Topic {
			return ks[i].Topic < ks[j].Topic
		}
		return ks[i].Partition < ks[j].Partition
	})
}

func joinInts(rs []int32) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = strconv.Itoa(int(r))
	}
	return strings.Join(s, ",")
}

// reassignJSON is Kafka's reassignment file.
type reassignJSON struct {
	Version    int                 `json:"version"`
	Partitions []reassignPartition `json:"partitions"`
}

type reassignPartition struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Replicas  []int32  `json:"replicas"`
	LogDirs   []string `json:"log_dirs"`
}

// formatReassignment renders an assignment as Kafka does (sorted, compact);
// dirs gives a replica's log dir ("any" when unknown).
func formatReassignment(assign map[tpKey][]int32, dirs func(tp tpKey, broker int32) string) string {
	keys := make([]tpKey, 0, len(assign))
	for k := range assign {
		keys = append(keys, k)
	}
	sortKeys(keys)
	doc := reassignJSON{Version: 1, Partitions: []reassignPartition{}}
	for _, k := range keys {
		p := reassignPartition{Topic: k.Topic, Partition: k.Partition, Replicas: assign[k], LogDirs: []string{}}
		for _, r := range assign[k] {
			d := "any"
			if dirs != nil {
				d = dirs(k, r)
			}
			p.LogDirs = append(p.LogDirs, d)
		}
		doc.Partitions = append(doc.Partitions, p)
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

// parseReassignment reads a reassignment file in order.
func parseReassignment(data []byte) ([]tpKey, map[tpKey][]int32, error) {
	var doc struct {
		Version    *int `json:"version"`
		Partitions []struct {
			Topic     string   `json:"topic"`
			Partition *int32   `json:"partition"`
			Replicas  []int32  `json:"replicas"`
			LogDirs   []string `json:"log_dirs"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, errors.New("The input string is not a valid JSON")
	}
	if doc.Version != nil && *doc.Version != 1 {
		return nil, nil, fmt.Errorf("Not supported version field value %d", *doc.Version)
	}
	if len(doc.Partitions) == 0 {
		return nil, nil, errors.New("Partition reassignment list cannot be empty")
	}
	var order []tpKey
	m := map[tpKey][]int32{}
	var dups []string
	for _, p := range doc.Partitions {
		if p.Partition == nil || p.Topic == "" {
			return nil, nil, errors.New(`each partition needs "topic", "partition" and "replicas"`)
		}
		k := tpKey{p.Topic, *p.Partition}
		if len(p.Replicas) == 0 {
			return nil, nil, errors.New("Partition replica list cannot be empty")
		}
		if p.LogDirs != nil && len(p.LogDirs) != len(p.Replicas) {
			return nil, nil, fmt.Errorf("Size of replicas list [%s] is different from size of log dirs list [%s] for partition %s",
				strings.ReplaceAll(joinInts(p.Replicas), ",", ", "), strings.Join(p.LogDirs, ", "), k)
		}
		for _, d := range p.LogDirs {
			if d != "any" {
				return nil, nil, fmt.Errorf("partition %s: moving replicas between log dirs is not supported (Gregor has one log dir per broker); use \"any\"", k)
			}
		}
		if _, ok := m[k]; ok {
			dups = append(dups, k.String())
			continue
		}
		for i, r := range p.Replicas {
			if slices.Contains(p.Replicas[:i], r) {
				return nil, nil, fmt.Errorf("Partition replica lists may not contain duplicate entries: %s contains multiple entries for %d. ", k, r)
			}
		}
		order = append(order, k)
		m[k] = p.Replicas
	}
	if len(dups) > 0 {
		return nil, nil, fmt.Errorf("Partition reassignment contains duplicate topic partitions: %s", strings.Join(dups, ","))
	}
	return order, m, nil
}

// listing is every reassignment in progress.
func listing(ctx context.Context, adm *adminClient) (map[tpKey]kmsg.ListPartitionReassignmentsResponseTopicPartition, error) {
	resp, err := kmsg.NewPtrListPartitionReassignmentsRequest().RequestWith(ctx, adm.cl)
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, kafkaError(err, derefString(resp.ErrorMessage))
	}
	out := map[tpKey]kmsg.ListPartitionReassignmentsResponseTopicPartition{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[tpKey{t.Topic, p.Partition}] = p
		}
	}
	return out, nil
}

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func listReassignments(ctx context.Context, adm *adminClient, out *bytes.Buffer) error {
	cur, err := listing(ctx, adm)
	if err != nil {
		return err
	}
	if len(cur) == 0 {
		fmt.Fprintln(out, "No partition reassignments found.")
		return nil
	}
	keys := make([]tpKey, 0, len(cur))
	for k := range cur {
		keys = append(keys, k)
	}
	sortKeys(keys)
	fmt.Fprintln(out, "Current partition reassignments:")
	for _, k := range keys {
		p := cur[k]
		line := fmt.Sprintf("%s: replicas: %s.", k, joinInts(p.Replicas))
		if len(p.AddingReplicas) > 0 {
			line += fmt.Sprintf(" adding: %s.", joinInts(p.AddingReplicas))
		}
		if len(p.RemovingReplicas) > 0 {
			line += fmt.Sprintf(" removing: %s.", joinInts(p.RemovingReplicas))
		}
		fmt.Fprintln(out, line)
	}
	return nil
}

// assignments are the current replicas of the named topics' partitions.
func assignments(ctx context.Context, adm *adminClient, topics []string) (map[tpKey][]int32, error) {
	md, err := adm.Metadata(ctx, topics...)
	if err != nil {
		return nil, err
	}
	out := map[tpKey][]int32{}
	for _, name := range topics {
		td, ok := md.Topics[name]
		if !ok || td.Err != nil {
			return nil, fmt.Errorf("org.apache.kafka.common.errors.UnknownTopicOrPartitionException: Topic %s not found.", name)
		}
		for _, p := range td.Partitions {
			out[tpKey{name, p.Partition}] = p.Replicas
		}
	}
	return out, nil
}

// logDirsOf finds each replica's log dir (DescribeLogDirs).
func logDirsOf(ctx context.Context, adm *adminClient, topics []string) func(tpKey, int32) string {
	dirs, err := adm.DescribeAllLogDirs(ctx, kadm.TopicsSet{})
	if err != nil {
		return nil
	}
	return func(k tpKey, broker int32) string {
		for d, ld := range dirs[broker] {
			if _, ok := ld.Topics.Lookup(k.Topic, k.Partition); ok {
				return d
			}
		}
		return "any"
	}
}

func (o *reassignOptions) runGenerate(ctx context.Context, adm *adminClient, out *bytes.Buffer, input []byte) error {
	var doc struct {
		Version *int `json:"version"`
		Topics  []struct {
			Topic string `json:"topic"`
		} `json:"topics"`
	}
	if err := json.Unmarshal(input, &doc); err != nil {
		return errors.New("The input string is not a valid JSON")
	}
	if doc.Version != nil && *doc.Version != 1 {
		return fmt.Errorf("Not supported version field value %d", *doc.Version)
	}
	var brokers []int32
	for _, s := range strings.Split(o.brokerList, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
		if err != nil {
			return fmt.Errorf("For input string: \"%s\"", s)
		}
		if slices.Contains(brokers, int32(n)) {
			return fmt.Errorf("Broker list contains duplicate entries: %d", n)
		}
		brokers = append(brokers, int32(n))
	}
	var topics []string
	for _, t := range doc.Topics {
		if slices.Contains(topics, t.Topic) {
			return fmt.Errorf("List of topics to reassign contains duplicate entries: %s", t.Topic)
		}
		topics = append(topics, t.Topic)
	}
	cur, err := assignments(ctx, adm, topics)
	if err != nil {
		return err
	}
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return err
	}
	for _, b := range brokers {
		if !slices.ContainsFunc(md.Brokers, func(d kadm.BrokerDetail) bool { return d.NodeID == b }) {
			return fmt.Errorf("Unknown broker id %d", b)
		}
	}
	slices.Sort(brokers)
	proposed := map[tpKey][]int32{}
	for _, topic := range topics {
		var parts []int32
		rf := 0
		for k, rs := range cur {
			if k.Topic == topic {
				parts = append(parts, k.Partition)
				rf = len(rs)
			}
		}
		if rf > len(brokers) {
			return fmt.Errorf("org.apache.kafka.server.common.AdminOperationException: Replication factor: %d larger than available brokers: %d.", rf, len(brokers))
		}
		slices.Sort(parts)
		start := rand.IntN(len(brokers))
		shift := rand.IntN(len(brokers))
		for i, p := range parts {
			first := (start + i) % len(brokers)
			if i > 0 && i%len(brokers) == 0 {
				shift++
			}
			rs := []int32{brokers[first]}
			for j := 1; j < rf; j++ {
				rs = append(rs, brokers[(first+1+(shift+j-1)%(len(brokers)-1))%len(brokers)])
			}
			proposed[tpKey{topic, p}] = rs
		}
	}
	fmt.Fprintf(out, "Current partition replica assignment\n%s\n\n", formatReassignment(cur, logDirsOf(ctx, adm, topics)))
	fmt.Fprintf(out, "Proposed partition reassignment configuration\n%s\n", formatReassignment(proposed, nil))
	return nil
}

func (o *reassignOptions) runExecute(ctx context.Context, adm *adminClient, out *bytes.Buffer, input []byte) error {
	order, target, err := parseReassignment(input)
	if err != nil {
		return err
	}
	inProgress, err := listing(ctx, adm)
	if err != nil {
		return err
	}
	if !o.additional && len(inProgress) > 0 {
		return errors.New("Cannot execute because there is an existing partition assignment.  Use --additional to override this and create a new partition assignment in addition to the existing one. The --additional flag can also be used to change the throttle by resubmitting the current reassignment.")
	}
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return err
	}
	for _, k := range order {
		for _, b := range target[k] {
			if !slices.ContainsFunc(md.Brokers, func(d kadm.BrokerDetail) bool { return d.NodeID == b }) {
				return fmt.Errorf("Unknown broker id %d", b)
			}
		}
	}
	topics := topicsOf(order)
	all, err := assignments(ctx, adm, topics)
	if err != nil {
		return err
	}
	cur := map[tpKey][]int32{}
	for _, k := range order {
		rs, ok := all[k]
		if !ok {
			return fmt.Errorf("org.apache.kafka.common.errors.UnknownTopicOrPartitionException: Unable to find partition: %s", k)
		}
		cur[k] = rs
	}
	fmt.Fprintf(out, "Current partition replica assignment\n\n%s\n\nSave this to use as the --reassignment-json-file option during rollback\n",
		formatReassignment(cur, logDirsOf(ctx, adm, topics)))
	if o.throttle >= 0 || o.logDirThrottle >= 0 {
		fmt.Fprintln(out, "Warning: You must run --verify periodically, until the reassignment completes, to ensure the throttle is removed.")
	}
	if o.throttle >= 0 {
		if err := setThrottles(ctx, adm, order, cur, target, o.throttle); err != nil {
			return err
		}
	}
	errs, err := alterReassignments(ctx, adm, order, target)
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return reassignErrors("Error reassigning partition(s):", errs)
	}
	names := make([]string, len(order))
	keys := slices.Clone(order)
	sortKeys(keys)
	for i, k := range keys {
		names[i] = k.String()
	}
	fmt.Fprintf(out, "Successfully started partition reassignment%s for %s\n", plural(len(order)), strings.Join(names, ","))
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// alterReassignments sends AlterPartitionReassignments; target nil
// entries cancel. It returns the failed partitions' messages.
func alterReassignments(ctx context.Context, adm *adminClient, order []tpKey, target map[tpKey][]int32) (map[tpKey]string, error) {
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	req.TimeoutMillis = int32(adminTimeout.Milliseconds())
	index := map[string]int{}
	for _, k := range order {
		i, ok := index[k.Topic]
		if !ok {
			i = len(req.Topics)
			index[k.Topic] = i
			rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
			rt.Topic = k.Topic
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		rp.Partition, rp.Replicas = k.Partition, target[k]
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	resp, err := req.RequestWith(ctx, adm.cl)
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, kafkaError(err, derefString(resp.ErrorMessage))
	}
	errs := map[tpKey]string{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				msg := derefString(p.ErrorMessage)
				if msg == "" {
					msg = kerr.ErrorForCode(p.ErrorCode).(*kerr.Error).Description
				}
				errs[tpKey{t.Topic, p.Partition}] = msg
			}
		}
	}
	return errs, nil
}

func reassignErrors(head string, errs map[tpKey]string) error {
	keys := make([]tpKey, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sortKeys(keys)
	lines := []string{head}
	for _, k := range keys {
		lines = append(lines, k.String()+": "+errs[k])
	}
	return errors.New(strings.Join(lines, "\n"))
}

func (o *reassignOptions) runVerify(ctx context.Context, adm *adminClient, out *bytes.Buffer, input []byte) error {
	order, target, err := parseReassignment(input)
	if err != nil {
		return err
	}
	inProgress, err := listing(ctx, adm)
	if err != nil {
		return err
	}
	topics := topicsOf(order)
	cur, err := assignments(ctx, adm, topics)
	if err != nil {
		return err
	}
	keys := slices.Clone(order)
	sortKeys(keys)
	fmt.Fprintln(out, "Status of partition reassignment:")
	ongoing := len(inProgress) > 0
	for _, k := range keys {
		switch rs, ok := cur[k]; {
		case inProgress[k].Replicas != nil:
			fmt.Fprintf(out, "Reassignment of partition %s is still in progress.\n", k)
		case !ok:
			return fmt.Errorf("org.apache.kafka.common.errors.UnknownTopicOrPartitionException: Unable to find partition: %s", k)
		case slices.Equal(rs, target[k]):
			fmt.Fprintf(out, "Reassignment of partition %s is completed.\n", k)
		default:
			fmt.Fprintf(out, "There is no active reassignment of partition %s, but replica set is %s rather than %s.\n", k, joinInts(rs), joinInts(target[k]))
		}
	}
	fmt.Fprintln(out)
	if !ongoing && !o.preserveThrottles {
		return clearThrottles(ctx, adm, out, order, target)
	}
	return nil
}

// Kafka's throttle configs, which --verify and --cancel clear.
var (
	brokerThrottles = []string{"leader.replication.throttled.rate", "follower.replication.throttled.rate", "replica.alter.log.dirs.io.max.bytes.per.second"}
	topicThrottles  = []string{"leader.replication.throttled.replicas", "follower.replication.throttled.replicas"}
)

// setThrottles sets Kafka's reassignment throttles (KIP-73) as its tool
// does: on each topic, the moving partitions' current replicas throttled
// as leaders and their new replicas as followers; on every broker
// involved, both rates.
func setThrottles(ctx context.Context, adm *adminClient, order []tpKey, cur, target map[tpKey][]int32, rate int64) error {
	leaders, followers := map[string][]string{}, map[string][]string{}
	var brokers []int32
	var topics []string
	for _, k := range order {
		if slices.Equal(cur[k], target[k]) {
			continue
		}
		if !slices.Contains(topics, k.Topic) {
			topics = append(topics, k.Topic)
		}
		for _, r := range cur[k] {
			leaders[k.Topic] = append(leaders[k.Topic], fmt.Sprintf("%d:%d", k.Partition, r))
		}
		for _, r := range target[k] {
			if !slices.Contains(cur[k], r) {
				followers[k.Topic] = append(followers[k.Topic], fmt.Sprintf("%d:%d", k.Partition, r))
			}
		}
		for _, r := range append(slices.Clone(cur[k]), target[k]...) {
			if !slices.Contains(brokers, r) {
				brokers = append(brokers, r)
			}
		}
	}
	v := strconv.FormatInt(rate, 10)
	for _, b := range brokers {
		ops := []kadm.AlterConfig{{Name: brokerThrottles[0], Value: &v}, {Name: brokerThrottles[1], Value: &v}}
		if _, err := adm.AlterBrokerConfigs(ctx, ops, b); err != nil {
			return err
		}
	}
	for _, t := range topics {
		l, f := strings.Join(leaders[t], ","), strings.Join(followers[t], ",")
		res, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: topicThrottles[0], Value: &l}, {Name: topicThrottles[1], Value: &f}}, t)
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.Err != nil {
				return kafkaError(r.Err, r.ErrMessage)
			}
		}
	}
	return nil
}

func clearThrottles(ctx context.Context, adm *adminClient, out *bytes.Buffer, order []tpKey, target map[tpKey][]int32) error {
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return err
	}
	var brokers []int32
	for _, b := range md.Brokers {
		brokers = append(brokers, b.NodeID)
	}
	topics := topicsOf(order)
	for _, k := range order {
		for _, r := range target[k] {
			if !slices.Contains(brokers, r) {
				brokers = append(brokers, r)
			}
		}
	}
	slices.Sort(brokers)
	fmt.Fprintf(out, "Clearing broker-level throttles on broker%s %s\n", plural(len(brokers)), joinInts(brokers))
	for _, b := range brokers {
		var ops []kadm.AlterConfig
		for _, name := range brokerThrottles {
			ops = append(ops, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: name})
		}
		if _, err := adm.AlterBrokerConfigs(ctx, ops, b); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "Clearing topic-level throttles on topic%s %s\n", plural(len(topics)), strings.Join(topics, ","))
	var ops []kadm.AlterConfig
	for _, name := range topicThrottles {
		ops = append(ops, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: name})
	}
	res, err := adm.AlterTopicConfigs(ctx, ops, topics...)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil {
			return kafkaError(r.Err, r.ErrMessage)
		}
	}
	return nil
}

func (o *reassignOptions) runCancel(ctx context.Context, adm *adminClient, out *bytes.Buffer, input []byte) error {
	order, target, err := parseReassignment(input)
	if err != nil {
		return err
	}
	inProgress, err := listing(ctx, adm)
	if err != nil {
		return err
	}
	var cancel []tpKey
	for _, k := range order {
		if _, ok := inProgress[k]; ok {
			cancel = append(cancel, k)
		}
	}
	if len(cancel) > 0 {
		errs, err := alterReassignments(ctx, adm, cancel, map[tpKey][]int32{})
		if err != nil {
			return err
		}
		if len(errs) > 0 {
			return reassignErrors(fmt.Sprintf("Error cancelling partition reassignment%s for:", plural(len(errs))), errs)
		}
		sortKeys(cancel)
		names := make([]string, len(cancel))
		for i, k := range cancel {
			names[i] = k.String()
		}
		fmt.Fprintf(out, "Successfully cancelled partition reassignment%s for: %s\n", plural(len(cancel)), strings.Join(names, ","))
	} else {
		fmt.Fprintln(out, "None of the specified partition reassignments are active.")
	}
	// Kafka prints this without a line end.
	fmt.Fprint(out, "None of the specified partition moves are active.")
	if !o.preserveThrottles {
		return clearThrottles(ctx, adm, out, order, target)
	}
	return nil
}

// topicsOf lists the topics of partitions, in first-seen order.
func topicsOf(order []tpKey) []string {
	var topics []string
	for _, k := range order {
		if !slices.Contains(topics, k.Topic) {
			topics = append(topics, k.Topic)
		}
	}
	return topics
}
