package cli

// gregor get-offsets: kafka-get-offsets.sh (Kafka's GetOffsetShell). One
// ListOffsets per partition leader for the partitions the filters select,
// printed as Kafka 4.4 prints them, one "topic:partition:offset" line each,
// ordered by the string "topic-partition" as Kafka orders them (so t-10
// comes before t-2). A partition with no such offset (a timestamp after the
// last record) has no line; one whose leader answers with an error is
// reported on stderr and skipped:
//
//	Skip getting offsets for topic-partition t-0 due to error: org.apache.kafka.common.errors.<Name>Exception: ...
//
// Filters: --topic (a regular expression, the whole name must match) and
// --partitions (ids), or --topic-partitions, a comma-separated list of
// TOPIC_REGEX[:PARTITIONS] rules where PARTITIONS is N, N-M (M excluded),
// N- or -M.

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type getOffsetsOptions struct {
	conn            connFlags
	topic           string
	partitions      string
	topicPartitions string
	time            string
	excludeInternal bool
}

func newGetOffsetsCommand() *cobra.Command {
	o := &getOffsetsOptions{}
	cmd := &cobra.Command{
		Use:   "get-offsets [--topic REGEX [--partitions IDS] | --topic-partitions RULES] [--time latest|earliest|max-timestamp|MS]",
		Short: "Show partitions' offsets: latest, earliest or at a time (kafka-get-offsets.sh)",
		Long:  "An interactive shell for getting topic-partition offsets.",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	o.conn.AddFlags(f, "command-config")
	f.StringVar(&o.topic, "topic", "", "the topic to get the offsets for; also a regular expression (default: every topic)")
	f.StringVar(&o.partitions, "partitions", "", "comma-separated partition ids (default: every partition)")
	f.StringVar(&o.topicPartitions, "topic-partitions", "", "comma-separated topic-partition rules, e.g. topic1:1,topic2:0-3,topic3,topic4:5-,topic5:-3 (not with --topic or --partitions)")
	f.StringVar(&o.time, "time", "latest", "<timestamp> / -1 or latest / -2 or earliest / -3 or max-timestamp / -4 or earliest-local / -5 or latest-tiered / -6 or earliest-pending-upload")
	f.BoolVar(&o.excludeInternal, "exclude-internal-topics", false, "leave out internal topics (by default they are included)")
	return cmd
}

// offsetSpecs are --time's names and the ListOffsets timestamps they stand for.
var offsetSpecs = map[string]int64{
	"latest": -1, "earliest": -2, "max-timestamp": -3, "earliest-local": -4, "latest-tiered": -5,
	"earliest-pending-upload": -6,
}

func parseOffsetTime(s string) (int64, error) {
	if ts, ok := offsetSpecs[s]; ok {
		return ts, nil
	}
	ts, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("Malformed time argument %s. Please use -1 or latest / -2 or earliest / -3 or max-timestamp / -4 or earliest-local / -5 or latest-tiered / -6 or earliest-pending-upload, or a specified long format timestamp", s)
	}
	return ts, nil
}

// partitionRule selects the partitions [lo, hi) of the topics that match re.
type partitionRule struct {
	re     *regexp.Regexp
	lo, hi int64
}

// topicRegexp compiles a topic filter as Kafka's IncludeList does: commas
// mean "or", spaces and surrounding quotes are dropped, and the whole
// name must match.
func topicRegexp(raw string) (*regexp.Regexp, error) {
	s := strings.ReplaceAll(strings.ReplaceAll(strings.TrimSpace(raw), ",", "|"), " ", "")
	s = strings.TrimRight(strings.TrimLeft(s, `"'`), `"'`)
	re, err := regexp.Compile(`^(?:` + s + `)$`)
	if err != nil {
		return nil, fmt.Errorf("%s is an invalid regex.", s)
	}
	return re, nil
}

var rulePattern = regexp.MustCompile(`^([^:,]*)(?::(?:([0-9]*)|(?:([0-9]*)-([0-9]*))))?$`)

func parseTopicPartitionRules(spec string) ([]partitionRule, error) {
	var rules []partitionRule
	for _, r := range strings.Split(spec, ",") {
		m := rulePattern.FindStringSubmatch(r)
		if m == nil {
			return nil, fmt.Errorf("Invalid rule specification: %s", r)
		}
		topic := m[1]
		if topic == "" {
			topic = ".*"
		}
		re, err := topicRegexp(topic)
		if err != nil {
			return nil, err
		}
		rule := partitionRule{re: re, lo: 0, hi: 1 << 31}
		num := func(s string, def int64) (int64, error) {
			if s == "" {
				return def, nil
			}
			n, err := strconv.ParseInt(s, 10, 32)
			if err != nil {
				return 0, fmt.Errorf("Invalid rule specification: %s", r)
			}
			return n, nil
		}
		if m[2] != "" {
			n, err := num(m[2], 0)
			if err != nil {
				return nil, err
			}
			rule.lo, rule.hi = n, n+1
		} else {
			if rule.lo, err = num(m[3], 0); err != nil {
				return nil, err
			}
			if rule.hi, err = num(m[4], 1<<31); err != nil {
				return nil, err
			}
		}
		rules = append(rules, rule)
	}
	return rules, nil
}

func (o *getOffsetsOptions) rules(cmd *cobra.Command) ([]partitionRule, error) {
	if cmd.Flags().Changed("topic-partitions") {
		if cmd.Flags().Changed("topic") || cmd.Flags().Changed("partitions") {
			return nil, errors.New("--topic-partitions cannot be used with --topic or --partitions")
		}
		return parseTopicPartitionRules(o.topicPartitions)
	}
	topic := o.topic
	if topic == "" {
		topic = ".*"
	}
	re, err := topicRegexp(topic)
	if err != nil {
		return nil, err
	}
	if o.partitions == "" {
		return []partitionRule{{re: re, lo: 0, hi: 1 << 31}}, nil
	}
	var rules []partitionRule
	for _, s := range strings.Split(o.partitions, ",") {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--partitions expects a comma separated list of numeric partition ids, but received: %s", o.partitions)
		}
		rules = append(rules, partitionRule{re: re, lo: n, hi: n + 1})
	}
	return rules, nil
}

func (o *getOffsetsOptions) run(cmd *cobra.Command) error {
	ts, err := parseOffsetTime(o.time)
	if err != nil {
		return err
	}
	rules, err := o.rules(cmd)
	if err != nil {
		return err
	}
	ctx, cancel := adminContext(cmd)
	defer cancel()
	adm, err := newAdmin(ctx, cmd, &o.conn)
	if err != nil {
		return err
	}
	defer adm.Close()
	list := adm.ListTopicsWithInternal
	if o.excludeInternal {
		list = adm.ListTopics
	}
	topics, err := list(ctx)
	if err != nil {
		return err
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	for _, td := range topics.Sorted() {
		if td.Err != nil {
			continue
		}
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = td.Topic
		for _, p := range td.Partitions.Sorted() {
			for _, r := range rules {
				if r.re.MatchString(td.Topic) && int64(p.Partition) >= r.lo && int64(p.Partition) < r.hi {
					rp := kmsg.NewListOffsetsRequestTopicPartition()
					rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = p.Partition, ts, -1
					rt.Partitions = append(rt.Partitions, rp)
					break
				}
			}
		}
		if len(rt.Partitions) > 0 {
			req.Topics = append(req.Topics, rt)
		}
	}
	if len(req.Topics) == 0 {
		return errors.New("Could not match any topic-partitions with the specified filters")
	}
	type line struct {
		tp     string
		offset int64
	}
	var lines []line
	for _, sh := range adm.cl.RequestSharded(ctx, req) {
		if sh.Err != nil {
			return sh.Err
		}
		resp := sh.Resp.(*kmsg.ListOffsetsResponse)
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				tp := fmt.Sprintf("%s-%d", rt.Topic, rp.Partition)
				if rp.ErrorCode != 0 {
					msg := ""
					if e, ok := kerr.ErrorForCode(rp.ErrorCode).(*kerr.Error); ok {
						msg = e.Description
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "Skip getting offsets for topic-partition %s due to error: %s: %s\n", tp, javaException(rp.ErrorCode), msg)
					continue
				}
				if rp.Offset == -1 {
					continue // no offset at that time
				}
				lines = append(lines, line{tp: tp, offset: rp.Offset})
			}
		}
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].tp < lines[j].tp })
	w := cmd.OutOrStdout()
	for _, l := range lines {
		i := strings.LastIndexByte(l.tp, '-')
		fmt.Fprintf(w, "%s:%s:%d\n", l.tp[:i], l.tp[i+1:], l.offset)
	}
	return nil
}
