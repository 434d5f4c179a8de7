package cli

// gregor topics: kafka-topics.sh. The output lines follow Kafka 4.x's
// TopicCommand: "Created topic X.", and for --describe one topic line
// (Topic, TopicId, PartitionCount, ReplicationFactor, Configs with the
// non-default configs) followed by one tab-indented line per partition
// ending in empty "Elr: 	LastKnownElr: " lists, as Kafka 4.4's tool
// prints them for a cluster without eligible leader replicas.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type topicsOptions struct {
	conn connFlags

	list, create, describe, alter, delete bool

	topic             string
	topicID           string
	partitions        int32
	replicationFactor int16
	replicaAssignment string
	configs           []string
	deleteConfigs     []string
	ifExists          bool
	ifNotExists       bool
	excludeInternal   bool

	underReplicated, unavailable, underMinISR, atMinISR, withOverrides bool

	format string
}

func (o *topicsOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	o.conn.AddFlags(f, "command-config")
	f.BoolVar(&o.list, "list", false, "list all topics")
	f.BoolVar(&o.create, "create", false, "create a topic")
	f.BoolVar(&o.describe, "describe", false, "describe the given topics (all if no --topic)")
	f.BoolVar(&o.alter, "alter", false, "change the number of partitions (or, with --config, topic configs)")
	f.BoolVar(&o.delete, "delete", false, "delete a topic")
	f.StringVar(&o.topic, "topic", "", "the topic; a regular expression except with --create (a,b means a or b)")
	f.StringVar(&o.topicID, "topic-id", "", "the topic id to describe")
	f.Int32Var(&o.partitions, "partitions", 0, "number of partitions (default: the broker's num.partitions)")
	f.Int16Var(&o.replicationFactor, "replication-factor", 0, "replication factor (default: the broker's default.replication.factor)")
	f.StringVar(&o.replicaAssignment, "replica-assignment", "", "manual assignment, broker ids: p0r0:p0r1,p1r0:p1r1,...")
	f.StringArrayVar(&o.configs, "config", nil, "a topic config override name=value (repeatable)")
	f.StringArrayVar(&o.deleteConfigs, "delete-config", nil, "with --alter, a topic config override to remove (repeatable)")
	f.BoolVar(&o.ifExists, "if-exists", false, "with --alter, --delete or --describe: only act if the topic exists")
	f.BoolVar(&o.ifNotExists, "if-not-exists", false, "with --create: do nothing if the topic exists")
	f.BoolVar(&o.excludeInternal, "exclude-internal", false, "leave out internal topics when listing or describing")
	f.BoolVar(&o.underReplicated, "under-replicated-partitions", false, "with --describe, only under-replicated partitions")
	f.BoolVar(&o.unavailable, "unavailable-partitions", false, "with --describe, only partitions without a leader")
	f.BoolVar(&o.underMinISR, "under-min-isr-partitions", false, "with --describe, only partitions with fewer in-sync replicas than min.insync.replicas")
	f.BoolVar(&o.atMinISR, "at-min-isr-partitions", false, "with --describe, only partitions with exactly min.insync.replicas in-sync replicas")
	f.BoolVar(&o.withOverrides, "topics-with-overrides", false, "with --describe, only topics that override configs")
	f.StringVar(&o.format, "format", "text", "output format for --list and --describe: text or json")
}

func newTopicsCommand() *cobra.Command {
	o := &topicsOptions{}
	cmd := &cobra.Command{
		Use:   "topics (--list | --describe | --create | --alter | --delete) [--topic T]",
		Short: "Create, delete, describe or change topics (kafka-topics.sh)",
		Example: `  gregor topics --bootstrap-server localhost:9092 --create --topic sanguo --partitions 3
  gregor topics --describe --topic sanguo
  gregor topics --alter --topic sanguo --partitions 6
  gregor topics --list --format json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 { // rpk style: the topic as an argument
				if o.topic != "" {
					return errors.New("give the topic either as an argument or with --topic, not both")
				}
				o.topic = args[0]
			}
			return o.run(cmd)
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func (o *topicsOptions) validate(cmd *cobra.Command) error {
	actions := 0
	for _, b := range []bool{o.list, o.create, o.describe, o.alter, o.delete} {
		if b {
			actions++
		}
	}
	if actions != 1 {
		return errors.New("give exactly one action: --list, --describe, --create, --alter or --delete")
	}
	if o.format != "text" && o.format != "json" {
		return fmt.Errorf("--format %q: want text or json", o.format)
	}
	if (o.create || o.alter || o.delete) && o.topic == "" {
		return errors.New("--topic is required")
	}
	changed := cmd.Flags().Changed
	if changed("partitions") && !o.create && !o.alter {
		return errors.New("--partitions is only valid with --create or --alter")
	}
	if changed("replication-factor") && !o.create {
		return errors.New("--replication-factor is only valid with --create")
	}
	if len(o.configs) > 0 && !o.create && !o.alter {
		return errors.New("--config is only valid with --create or --alter")
	}
	if len(o.deleteConfigs) > 0 && !o.alter {
		return errors.New("--delete-config is only valid with --alter")
	}
	if o.ifNotExists && !o.create {
		return errors.New("--if-not-exists is only valid with --create")
	}
	if o.ifExists && !(o.alter || o.delete || o.describe) {
		return errors.New("--if-exists is only valid with --alter, --delete or --describe")
	}
	if o.excludeInternal && !(o.list || o.describe) {
		return errors.New("--exclude-internal is only valid with --list or --describe")
	}
	if o.alter && !changed("partitions") && len(o.configs) == 0 && len(o.deleteConfigs) == 0 {
		return errors.New("--alter needs --partitions (or --config / --delete-config)")
	}
	if o.create && o.replicaAssignment != "" && (changed("partitions") || changed("replication-factor")) {
		return errors.New("--replica-assignment cannot be used with --partitions or --replication-factor")
	}
	if changed("partitions") && o.partitions < 1 {
		return errors.New("the partitions must be greater than 0")
	}
	if changed("replication-factor") && o.replicationFactor < 1 {
		return errors.New("the replication factor must be between 1 and 32767 inclusive")
	}
	return nil
}

func (o *topicsOptions) run(cmd *cobra.Command) error {
	if err := o.validate(cmd); err != nil {
		return err
	}
	ctx, cancel := adminContext(cmd)
	defer cancel()
	adm, err := newAdmin(ctx, cmd, &o.conn)
	if err != nil {
		return err
	}
	defer adm.Close()
	out := cmd.OutOrStdout()
	switch {
	case o.create:
		return o.runCreate(cmd, adm, out)
	case o.list:
		return o.runList(cmd, adm, out)
	case o.describe:
		return o.runDescribe(cmd, adm, out)
	case o.alter:
		return o.runAlter(cmd, adm)
	default:
		return o.runDelete(cmd, adm)
	}
}

func (o *topicsOptions) runCreate(cmd *cobra.Command, adm *adminClient, out io.Writer) error {
	ctx, cancel := adminContext(cmd)
	defer cancel()
	configs := map[string]*string{}
	for _, kv := range o.configs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("--config %q: want name=value", kv)
		}
		v = strings.TrimSpace(v)
		configs[strings.TrimSpace(k)] = &v
	}
	if strings.ContainsAny(o.topic, "._") {
		fmt.Fprintln(out, "WARNING: Due to limitations in metric names, topics with a period ('.') or underscore ('_') could collide. To avoid issues it is best to use either, but not both.")
	}
	partitions, rf := int32(-1), int16(-1)
	if cmd.Flags().Changed("partitions") {
		partitions = o.partitions
	}
	if cmd.Flags().Changed("replication-factor") {
		rf = o.replicationFactor
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = int32(adminTimeout.Milliseconds())
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = o.topic, partitions, rf
	if o.replicaAssignment != "" {
		assignment, err := parseReplicaAssignment(o.replicaAssignment)
		if err != nil {
			return err
		}
		for i, replicas := range assignment {
			ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
			ra.Partition, ra.Replicas = int32(i), replicas
			rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
		}
	}
	names := make([]string, 0, len(configs))
	for k := range configs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, configs[k]
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, adm.cl)
	if err != nil {
		return err
	}
	if len(resp.Topics) != 1 {
		return errors.New("malformed CreateTopics response")
	}
	st := resp.Topics[0]
	if err := kerr.ErrorForCode(st.ErrorCode); err != nil {
		if errors.Is(err, kerr.TopicAlreadyExists) {
			if o.ifNotExists {
				return nil
			}
			return fmt.Errorf("topic '%s' already exists", o.topic)
		}
		return kafkaError(err, deref(st.ErrorMessage))
	}
	fmt.Fprintf(out, "Created topic %s.\n", o.topic)
	return nil
}

// parseReplicaAssignment reads Kafka's "1:2,1:2" (one group per partition).
func parseReplicaAssignment(s string) ([][]int32, error) {
	var out [][]int32
	for i, part := range strings.Split(s, ",") {
		var replicas []int32
		seen := map[int32]bool{}
		for _, r := range strings.Split(part, ":") {
			n, err := strconv.ParseInt(strings.TrimSpace(r), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--replica-assignment: bad broker id %q", r)
			}
			if seen[int32(n)] {
				return nil, fmt.Errorf("--replica-assignment: partition %d lists broker %d twice", i, n)
			}
			seen[int32(n)] = true
			replicas = append(replicas, int32(n))
		}
		if i > 0 && len(replicas) != len(out[0]) {
			return nil, fmt.Errorf("--replica-assignment: partition %d has a different replication factor", i)
		}
		out = append(out, replicas)
	}
	return out, nil
}

// matchTopics selects the topics named by --topic the way Kafka's
// IncludeList does: a Java-style regex that must match the whole name, with
// "," meaning "or". An empty pattern selects everything.
func matchTopics(all kadm.TopicDetails, pattern string, excludeInternal bool) ([]string, error) {
	var re *regexp.Regexp
	if pattern != "" {
		p := strings.ReplaceAll(strings.TrimSpace(pattern), ",", "|")
		p = strings.ReplaceAll(p, " ", "")
		p = strings.Trim(p, `"'`)
		var err error
		if re, err = regexp.Compile("^(?:" + p + ")$"); err != nil {
			return nil, fmt.Errorf("%s is an invalid regex", p)
		}
	}
	var names []string
	for name, td := range all {
		if excludeInternal && (td.IsInternal || isInternalTopic(name)) {
			continue
		}
		if re != nil && !re.MatchString(name) {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

func isInternalTopic(name string) bool {
	return name == "__consumer_offsets" || name == "__transaction_state"
}

// allTopics lists every topic, internal ones included.
func allTopics(cmd *cobra.Command, adm *adminClient) (kadm.TopicDetails, error) {
	ctx, cancel := adminContext(cmd)
	defer cancel()
	tds, err := adm.ListTopicsWithInternal(ctx)
	if err != nil {
		return nil, err
	}
	return tds, nil
}

// selectTopics applies --topic / --if-exists: a named topic that matches
// nothing is an error unless --if-exists.
func (o *topicsOptions) selectTopics(cmd *cobra.Command, adm *adminClient) (kadm.TopicDetails, []string, error) {
	all, err := allTopics(cmd, adm)
	if err != nil {
		return nil, nil, err
	}
	names, err := matchTopics(all, o.topic, o.excludeInternal)
	if err != nil {
		return nil, nil, err
	}
	if o.topic != "" && len(names) == 0 && !o.ifExists {
		return nil, nil, fmt.Errorf("topic '%s' does not exist", o.topic)
	}
	return all, names, nil
}

func (o *topicsOptions) runList(cmd *cobra.Command, adm *adminClient, out io.Writer) error {
	all, names, err := o.selectTopics(cmd, adm)
	if err != nil {
		return err
	}
	if o.format == "json" {
		list := make([]topicJSON, 0, len(names))
		for _, n := range names {
			td := all[n]
			list = append(list, topicJSON{
				Name: n, ID: topicIDString(td.ID), Internal: td.IsInternal,
				PartitionCount: len(td.Partitions), ReplicationFactor: td.Partitions.NumReplicas(),
			})
		}
		return writeJSON(out, list)
	}
	// Kafka prints the names joined by newlines with println, so an empty
	// cluster gives one empty line.
	fmt.Fprintln(out, strings.Join(names, "\n"))
	return nil
}

// topicIDString renders a topic id as Kafka does: URL-safe base64 without
// padding (22 characters).
func topicIDString(id kadm.TopicID) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}

type topicJSON struct {
	Name              string             `json:"name"`
	ID                string             `json:"id"`
	Internal          bool               `json:"internal"`
	PartitionCount    int                `json:"partition_count"`
	ReplicationFactor int                `json:"replication_factor"`
	Configs           map[string]string  `json:"configs,omitempty"`
	Partitions        []topicPartitionJS `json:"partitions,omitempty"`
}

type topicPartitionJS struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	Error       string  `json:"error,omitempty"`
}

func (o *topicsOptions) runDescribe(cmd *cobra.Command, adm *adminClient, out io.Writer) error {
	all, names, err := o.selectTopics(cmd, adm)
	if err != nil {
		return err
	}
	if o.topicID != "" {
		names = nil
		for n, td := range all {
			if topicIDString(td.ID) == o.topicID {
				names = append(names, n)
			}
		}
		if len(names) == 0 && !o.ifExists {
			return fmt.Errorf("topic id '%s' does not exist", o.topicID)
		}
	}
	if len(names) == 0 {
		if o.format == "json" {
			return writeJSON(out, []topicJSON{})
		}
		return nil
	}
	ctx, cancel := adminContext(cmd)
	defer cancel()
	rcs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return err
	}
	configs := map[string][]kadm.Config{}
	for _, rc := range rcs {
		if rc.Err != nil {
			return kafkaError(rc.Err, rc.ErrMessage)
		}
		configs[rc.Name] = rc.Configs
	}
	filterPartitions := o.underReplicated || o.unavailable || o.underMinISR || o.atMinISR
	var js []topicJSON
	for _, name := range names {
		td := all[name]
		if td.Err != nil {
			return fmt.Errorf("topic '%s': %v", name, td.Err)
		}
		overrides := map[string]string{}
		var pairs []string
		minISR := 1
		for _, c := range configs[name] {
			if c.Key == "min.insync.replicas" {
				if n, err := strconv.Atoi(c.MaybeValue()); err == nil {
					minISR = n
				}
			}
			if c.Source == kmsg.ConfigSourceDefaultConfig {
				continue
			}
			overrides[c.Key] = c.MaybeValue()
			pairs = append(pairs, c.Key+"="+c.MaybeValue())
		}
		sort.Strings(pairs)
		if o.withOverrides && len(pairs) == 0 {
			continue
		}
		parts := td.Partitions.Sorted()
		keep := func(p kadm.PartitionDetail) bool {
			switch {
			case !filterPartitions:
				return !o.withOverrides
			case o.underReplicated && len(p.ISR) < len(p.Replicas):
				return true
			case o.unavailable && p.Leader < 0:
				return true
			case o.underMinISR && (p.Leader < 0 || len(p.ISR) < minISR):
				return true
			case o.atMinISR && len(p.ISR) == minISR:
				return true
			}
			return false
		}
		if o.format == "json" {
			t := topicJSON{
				Name: name, ID: topicIDString(td.ID), Internal: td.IsInternal,
				PartitionCount: len(parts), ReplicationFactor: td.Partitions.NumReplicas(),
				Configs: overrides,
			}
			for _, p := range parts {
				if !filterPartitions || keep(p) {
					pj := topicPartitionJS{Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: nonNil(p.Replicas), ISR: nonNil(p.ISR)}
					if p.Err != nil {
						pj.Error = p.Err.Error()
					}
					t.Partitions = append(t.Partitions, pj)
				}
			}
			js = append(js, t)
			continue
		}
		if !filterPartitions {
			rf := 0
			if len(parts) > 0 {
				rf = len(parts[0].Replicas)
			}
			fmt.Fprintf(out, "Topic: %s", name)
			if td.ID != (kadm.TopicID{}) {
				fmt.Fprintf(out, "\tTopicId: %s", topicIDString(td.ID))
			}
			fmt.Fprintf(out, "\tPartitionCount: %d\tReplicationFactor: %d\tConfigs: %s\n", len(parts), rf, strings.Join(pairs, ","))
		}
		for _, p := range parts {
			if !keep(p) {
				continue
			}
			leader := "none"
			if p.Leader >= 0 {
				leader = strconv.Itoa(int(p.Leader))
			}
			fmt.Fprintf(out, "\tTopic: %s\tPartition: %d\tLeader: %s\tReplicas: %s\tIsr: %s\tElr: \tLastKnownElr: \n",
				name, p.Partition, leader, joinInt32(p.Replicas), joinInt32(p.ISR))
		}
	}
	if o.format == "json" {
		if js == nil {
			js = []topicJSON{}
		}
		return writeJSON(out, js)
	}
	return nil
}

func (o *topicsOptions) runAlter(cmd *cobra.Command, adm *adminClient) error {
	_, names, err := o.selectTopics(cmd, adm)
	if err != nil || len(names) == 0 {
		return err
	}
	ctx, cancel := adminContext(cmd)
	defer cancel()
	if cmd.Flags().Changed("partitions") {
		resps, err := adm.UpdatePartitions(ctx, int(o.partitions), names...)
		if err != nil {
			return err
		}
		for _, n := range names {
			if r, ok := resps[n]; ok && r.Err != nil {
				return kafkaError(r.Err, r.ErrMessage)
			}
		}
	}
	// Kafka 4 moved config changes to kafka-configs.sh; older tutorials
	// still pass --config to --alter, so it is honoured here.
	var alters []kadm.AlterConfig
	for _, kv := range o.configs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("--config %q: want name=value", kv)
		}
		v = strings.TrimSpace(v)
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: strings.TrimSpace(k), Value: &v})
	}
	for _, k := range o.deleteConfigs {
		alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: strings.TrimSpace(k)})
	}
	if len(alters) > 0 {
		resps, err := adm.AlterTopicConfigs(ctx, alters, names...)
		if err != nil {
			return err
		}
		for _, r := range resps {
			if r.Err != nil {
				return kafkaError(r.Err, r.ErrMessage)
			}
		}
	}
	return nil
}

func (o *topicsOptions) runDelete(cmd *cobra.Command, adm *adminClient) error {
	_, names, err := o.selectTopics(cmd, adm)
	if err != nil || len(names) == 0 {
		return err
	}
	ctx, cancel := adminContext(cmd)
	defer cancel()
	resps, err := adm.DeleteTopics(ctx, names...)
	if err != nil {
		return err
	}
	for _, n := range names {
		if r, ok := resps[n]; ok && r.Err != nil {
			return kafkaError(r.Err, r.ErrMessage)
		}
	}
	return nil
}

func joinInt32(xs []int32) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(int(x))
	}
	return strings.Join(s, ",")
}

func nonNil(xs []int32) []int32 {
	if xs == nil {
		return []int32{}
	}
	return xs
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
