package cli

// gregor leader-election: kafka-leader-election.sh (Kafka's
// LeaderElectionCommand). ElectLeaders (key 43) for one partition
// (--topic with --partition), the partitions of a JSON file
// (--path-to-json-file: {"partitions": [{"topic": "t", "partition": 0}]})
// or every partition (--all-topic-partitions, a null list, for which the
// controller reports only the partitions it elected). Output as Kafka 4.4:
//
//	Successfully completed leader election (PREFERRED) for partitions t-0, t-1
//	Valid replica already elected for partitions t-2
//	Error completing leader election (PREFERRED) for partition: t-3: org.apache.kafka.common.errors.PreferredLeaderNotAvailableException: ...
//
// and with any failure the tool fails with "N replica(s) could not be
// elected". The partitions of each line are in no particular order in
// Kafka (a hash set); Gregor sorts them.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type leaderElectionOptions struct {
	conn         connFlags
	adminConfig  string
	electionType string
	topic        string
	partition    int32
	all          bool
	jsonFile     string
}

func newLeaderElectionCommand() *cobra.Command {
	o := &leaderElectionOptions{}
	cmd := &cobra.Command{
		Use:   "leader-election --bootstrap-server HOST:PORT --election-type PREFERRED|UNCLEAN (--topic T --partition N | --all-topic-partitions | --path-to-json-file FILE)",
		Short: "Elect preferred or unclean leaders (kafka-leader-election.sh)",
		Long: "This tool attempts to elect a new leader for a set of topic partitions. The type of elections\n" +
			"supported are preferred replicas and unclean replicas.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	o.conn.AddFlags(f, "command-config")
	f.StringVar(&o.adminConfig, "admin.config", "", "configuration properties file to pass to the admin client")
	f.StringVar(&o.electionType, "election-type", "", "type of election: PREFERRED or UNCLEAN (case-insensitive)")
	f.StringVar(&o.topic, "topic", "", "name of the topic to elect a leader for (with --partition)")
	f.Int32Var(&o.partition, "partition", -1, "partition id to elect a leader for (with --topic)")
	f.BoolVar(&o.all, "all-topic-partitions", false, "elect on every eligible partition")
	f.StringVar(&o.jsonFile, "path-to-json-file", "", `JSON file of partitions: {"partitions": [{"topic": "foo", "partition": 1}]}`)
	return cmd
}

func (o *leaderElectionOptions) validate(cmd *cobra.Command) error {
	var missing []string
	if o.conn.bootstrap == "" && o.conn.brokerList == "" {
		missing = append(missing, "bootstrap-server")
	}
	if o.electionType == "" {
		missing = append(missing, "election-type")
	}
	if len(missing) > 0 {
		return fmt.Errorf("Missing required option(s): %s", strings.Join(missing, ", "))
	}
	n := 0
	for _, set := range []bool{cmd.Flags().Changed("topic"), o.all, o.jsonFile != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("One and only one of the following options is required: topic, all-topic-partitions, path-to-json-file")
	}
	hasPartition := cmd.Flags().Changed("partition")
	if cmd.Flags().Changed("topic") && !hasPartition {
		return errors.New("Missing required option(s): partition")
	}
	if !cmd.Flags().Changed("topic") && hasPartition {
		return errors.New("Option partition is only allowed if topic is used")
	}
	return nil
}

func (o *leaderElectionOptions) run(cmd *cobra.Command) error {
	if err := o.validate(cmd); err != nil {
		return err
	}
	var typ int8
	switch strings.ToLower(o.electionType) {
	case "preferred":
		typ = 0
	case "unclean":
		typ = 1
	default:
		return fmt.Errorf("Cannot convert value '%s' to election type: expected PREFERRED or UNCLEAN", o.electionType)
	}
	typeName := [2]string{"PREFERRED", "UNCLEAN"}[typ]
	if o.adminConfig != "" {
		o.conn.configFile = o.adminConfig
	}
	req := kmsg.NewPtrElectLeadersRequest()
	req.ElectionType = typ
	switch {
	case o.all:
		req.Topics = nil
	case o.jsonFile != "":
		parts, err := readElectionJSON(o.jsonFile)
		if err != nil {
			return err
		}
		req.Topics = parts
	default:
		rt := kmsg.NewElectLeadersRequestTopic()
		rt.Topic, rt.Partitions = o.topic, []int32{o.partition}
		req.Topics = []kmsg.ElectLeadersRequestTopic{rt}
	}
	ctx, cancel := adminContext(cmd)
	defer cancel()
	adm, err := newAdmin(ctx, cmd, &o.conn)
	if err != nil {
		return err
	}
	defer adm.Close()
	req.TimeoutMillis = int32(adminTimeout.Milliseconds())
	resp, err := req.RequestWith(ctx, adm.cl)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		if errors.Is(err, kerr.ClusterAuthorizationFailed) {
			fmt.Fprintln(cmd.OutOrStdout(), "Not authorized to perform leader election")
		}
		return err
	}
	var ok, noop, failed []string
	fails := map[string]string{}
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			tp := fmt.Sprintf("%s-%d", rt.Topic, p.Partition)
			switch {
			case p.ErrorCode == 0:
				ok = append(ok, tp)
			case p.ErrorCode == kerr.ElectionNotNeeded.Code:
				noop = append(noop, tp)
			default:
				failed = append(failed, tp)
				msg := ""
				if p.ErrorMessage != nil {
					msg = *p.ErrorMessage
				} else if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
					msg = e.(*kerr.Error).Description
				}
				fails[tp] = javaException(p.ErrorCode) + ": " + msg
			}
		}
	}
	for _, s := range [][]string{ok, noop, failed} {
		sortTopicPartitions(s)
	}
	out := cmd.OutOrStdout()
	if len(ok) > 0 {
		fmt.Fprintf(out, "Successfully completed leader election (%s) for partitions %s\n", typeName, strings.Join(ok, ", "))
	}
	if len(noop) > 0 {
		fmt.Fprintf(out, "Valid replica already elected for partitions %s\n", strings.Join(noop, ", "))
	}
	if len(failed) > 0 {
		for _, tp := range failed {
			fmt.Fprintf(out, "Error completing leader election (%s) for partition: %s: %s\n", typeName, tp, fails[tp])
		}
		return fmt.Errorf("%d replica(s) could not be elected", len(failed))
	}
	return nil
}

// readElectionJSON reads --path-to-json-file.
func readElectionJSON(path string) ([]kmsg.ElectLeadersRequestTopic, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Partitions *[]struct {
			Topic     *string `json:"topic"`
			Partition *int32  `json:"partition"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: not valid JSON: %v", path, err)
	}
	if doc.Partitions == nil {
		return nil, errors.New("Replica election data is missing \"partitions\" field")
	}
	var out []kmsg.ElectLeadersRequestTopic
	index := map[string]int{}
	seen := map[string]bool{}
	var dups []string
	for _, p := range *doc.Partitions {
		if p.Topic == nil || p.Partition == nil {
			return nil, errors.New(`each entry of "partitions" needs "topic" and "partition"`)
		}
		tp := fmt.Sprintf("%s-%d", *p.Topic, *p.Partition)
		if seen[tp] {
			dups = append(dups, tp)
			continue
		}
		seen[tp] = true
		i, ok := index[*p.Topic]
		if !ok {
			i = len(out)
			index[*p.Topic] = i
			rt := kmsg.NewElectLeadersRequestTopic()
			rt.Topic = *p.Topic
			out = append(out, rt)
		}
		out[i].Partitions = append(out[i].Partitions, *p.Partition)
	}
	if len(dups) > 0 {
		return nil, fmt.Errorf("Replica election data contains duplicate partitions: %s", strings.Join(dups, ","))
	}
	if out == nil {
		out = []kmsg.ElectLeadersRequestTopic{}
	}
	return out, nil
}

// sortTopicPartitions sorts "topic-N" strings by topic, then partition.
func sortTopicPartitions(s []string) {
	split := func(tp string) (string, int) {
		i := strings.LastIndexByte(tp, '-')
		n := 0
		fmt.Sscan(tp[i+1:], &n)
		return tp[:i], n
	}
	sort.SliceStable(s, func(i, j int) bool {
		ti, pi := split(s[i])
		tj, pj := split(s[j])
		if ti != tj {
			return ti < tj
		}
		return pi < pj
	})
}

// javaException is the Java class name Kafka's tools print for an error
// code: org.apache.kafka.common.errors.<Name>Exception.
func javaException(code int16) string {
	special := map[int16]string{
		kerr.UnknownTopicOrPartition.Code:  "UnknownTopicOrPartitionException",
		kerr.NotController.Code:            "NotControllerException",
		kerr.InvalidReplicaAssignment.Code: "InvalidReplicaAssignmentException",
		kerr.NoReassignmentInProgress.Code: "NoReassignmentInProgressException",
		kerr.InvalidReplicationFactor.Code: "InvalidReplicationFactorException",
	}
	name, ok := special[code]
	if !ok {
		e, _ := kerr.ErrorForCode(code).(*kerr.Error)
		if e == nil {
			return "org.apache.kafka.common.errors.UnknownServerException"
		}
		var b strings.Builder
		for _, w := range strings.Split(strings.ToLower(e.Message), "_") {
			if w != "" {
				b.WriteString(strings.ToUpper(w[:1]) + w[1:])
			}
		}
		name = b.String()
		if !strings.HasSuffix(name, "Exception") {
			name += "Exception"
		}
	}
	return "org.apache.kafka.common.errors." + name
}
