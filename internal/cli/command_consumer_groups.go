package cli

// gregor consumer-groups (alias groups): kafka-consumer-groups.sh.
//
// The tables are Kafka's (ConsumerGroupCommand): columns padded to at least
// 15 characters or the longest value, "-" for a missing value, a blank line
// before each table, and the notes "Consumer group 'G' has no active
// members." / "Warning: Consumer group 'G' is rebalancing." on stderr.
// Where Kafka's row order comes from a hash map, rows here are sorted by
// topic and partition.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

const missing = "-" // Kafka's MISSING_COLUMN_VALUE

type groupsOptions struct {
	conn connFlags

	list, describe, delete, resetOffsets, deleteOffsets bool

	groups    []string
	allGroups bool
	topics    []string
	allTopics bool

	members, offsets, verbose bool
	state                     string
	groupType                 string

	dryRun, execute, export bool

	toOffset, shiftBy                int64
	toEarliest, toLatest, toCurrent  bool
	toDatetime, byDuration, fromFile string
	timeoutMs                        int64
	format                           string
	stateGiven                       bool
	scenario                         string // the --reset-offsets flag given
}

func (o *groupsOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	o.conn.AddFlags(f, "command-config")
	f.BoolVar(&o.list, "list", false, "list consumer groups")
	f.BoolVar(&o.describe, "describe", false, "describe groups: offsets and lag (default), --members or --state")
	f.BoolVar(&o.delete, "delete", false, "delete groups")
	f.BoolVar(&o.resetOffsets, "reset-offsets", false, "reset the committed offsets of inactive groups")
	f.BoolVar(&o.deleteOffsets, "delete-offsets", false, "delete the committed offsets of a group for --topic")
	f.StringArrayVar(&o.groups, "group", nil, "the consumer group (repeatable)")
	f.BoolVar(&o.allGroups, "all-groups", false, "act on all groups")
	f.StringArrayVar(&o.topics, "topic", nil, "topic, or topic:p1,p2 for some partitions (repeatable)")
	f.BoolVar(&o.allTopics, "all-topics", false, "with --reset-offsets: every topic the group has offsets for")
	f.BoolVar(&o.members, "members", false, "with --describe: list the members")
	f.BoolVar(&o.offsets, "offsets", false, "with --describe: offsets and lag (the default)")
	f.BoolVar(&o.verbose, "verbose", false, "with --describe --members: show each member's partitions")
	f.StringVar(&o.state, "state", "", "with --describe: the group's state; with --list: show states, or only groups in these states (Stable,Empty,...)")
	f.Lookup("state").NoOptDefVal = " "
	f.StringVar(&o.groupType, "type", "", "with --list: show group types, or only groups of these types (classic,consumer)")
	f.Lookup("type").NoOptDefVal = " "
	f.BoolVar(&o.dryRun, "dry-run", false, "with --reset-offsets: only show the new offsets (the default)")
	f.BoolVar(&o.execute, "execute", false, "with --reset-offsets: commit the new offsets")
	f.BoolVar(&o.export, "export", false, "with --reset-offsets: print the plan as CSV")
	f.Int64Var(&o.toOffset, "to-offset", 0, "reset to this offset")
	f.Int64Var(&o.shiftBy, "shift-by", 0, "reset to the current offset plus n (n may be negative)")
	f.BoolVar(&o.toEarliest, "to-earliest", false, "reset to the earliest offset")
	f.BoolVar(&o.toLatest, "to-latest", false, "reset to the latest offset")
	f.BoolVar(&o.toCurrent, "to-current", false, "reset to the current offset")
	f.StringVar(&o.toDatetime, "to-datetime", "", "reset to the first offset at or after YYYY-MM-DDTHH:mm:SS.sss[+hh:mm] (UTC if no zone)")
	f.StringVar(&o.byDuration, "by-duration", "", "reset to the first offset at or after now minus an ISO-8601 duration (PnDTnHnMnS)")
	f.StringVar(&o.fromFile, "from-file", "", "reset to the offsets in a CSV file (topic,partition,offset or group,topic,partition,offset)")
	f.Int64Var(&o.timeoutMs, "timeout", 5000, "accepted for compatibility")
	f.StringVar(&o.format, "format", "text", "output format for --list and --describe: text or json")
}

func newConsumerGroupsCommand() *cobra.Command {
	o := &groupsOptions{}
	cmd := &cobra.Command{
		Use:     "consumer-groups (--list | --describe | --reset-offsets | --delete | --delete-offsets) [--group G]",
		Aliases: []string{"groups"},
		Short:   "List, describe, reset or delete consumer groups (kafka-consumer-groups.sh)",
		Example: `  gregor consumer-groups --bootstrap-server localhost:9092 --list
  gregor consumer-groups --describe --group test-consumer-group
  gregor groups --describe --group g1 --members --verbose
  gregor groups --reset-offsets --group g1 --topic sanguo --to-earliest --execute`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// --state and --type take an optional value; "--state Stable"
			// leaves Stable as an argument, which is taken back here.
			for _, name := range []string{"state", "type"} {
				fl := cmd.Flags().Lookup(name)
				if len(args) > 0 && fl.Changed && fl.Value.String() == " " && o.list {
					_ = fl.Value.Set(args[0])
					args = args[1:]
				}
			}
			if len(args) > 0 {
				return fmt.Errorf("unexpected argument %q", args[0])
			}
			o.stateGiven = cmd.Flags().Changed("state")
			o.state = strings.TrimSpace(o.state)
			o.groupType = strings.TrimSpace(o.groupType)
			return o.run(cmd)
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func (o *groupsOptions) validate(cmd *cobra.Command) error {
	n := 0
	for _, b := range []bool{o.list, o.describe, o.delete, o.resetOffsets, o.deleteOffsets} {
		if b {
			n++
		}
	}
	changed := cmd.Flags().Changed
	switch {
	case n != 1:
		return errors.New("give exactly one action: --list, --describe, --delete, --reset-offsets, --delete-offsets")
	case o.format != "text" && o.format != "json":
		return fmt.Errorf("--format %q: want text or json", o.format)
	case len(o.groups) > 0 && o.allGroups:
		return errors.New("--group and --all-groups cannot be used together")
	case (o.describe || o.delete || o.resetOffsets) && len(o.groups) == 0 && !o.allGroups:
		return errors.New("this action needs --group or --all-groups")
	case o.deleteOffsets && (len(o.groups) != 1 || len(o.topics) == 0):
		return errors.New("--delete-offsets needs one --group and --topic")
	case o.delete && len(o.topics) > 0:
		return errors.New("the consumer does not support topic-specific offset deletion from a consumer group")
	case len(o.topics) > 0 && !(o.resetOffsets || o.deleteOffsets):
		return errors.New("--topic is only valid with --reset-offsets or --delete-offsets")
	case (o.members || o.offsets || o.verbose) && !o.describe:
		return errors.New("--members, --offsets and --verbose are only valid with --describe")
	case o.stateGiven && !(o.describe || o.list):
		return errors.New("--state is only valid with --describe or --list")
	case changed("type") && !o.list:
		return errors.New("--type is only valid with --list")
	}
	if o.describe {
		k := 0
		for _, b := range []bool{o.members, o.offsets, o.stateGiven} {
			if b {
				k++
			}
		}
		if k > 1 {
			return errors.New("--describe takes at most one of --members, --offsets, --state")
		}
		if o.stateGiven && o.state != "" {
			return errors.New("--describe does not take a value for --state")
		}
	}
	if o.resetOffsets {
		if o.dryRun && o.execute {
			return errors.New("--reset-offsets accepts only one of --execute and --dry-run")
		}
		k := 0
		for _, name := range []string{"to-offset", "shift-by", "to-earliest", "to-latest", "to-current", "to-datetime", "by-duration", "from-file"} {
			if changed(name) {
				k++
				o.scenario = name
			}
		}
		if k != 1 {
			return errors.New("--reset-offsets needs exactly one of --to-earliest, --to-latest, --to-current, --to-offset, --shift-by, --to-datetime, --by-duration, --from-file")
		}
		if len(o.topics) == 0 && !o.allTopics && o.fromFile == "" {
			return errors.New("one of the reset scopes should be defined: --all-topics, --topic")
		}
		if len(o.topics) > 0 && o.allTopics {
			return errors.New("--topic and --all-topics cannot be used together")
		}
	}
	return nil
}

func (o *groupsOptions) run(cmd *cobra.Command) error {
	if err := o.validate(cmd); err != nil {
		return err
	}
	if o.resetOffsets && !o.dryRun && !o.execute {
		fmt.Fprintln(cmd.ErrOrStderr(), "WARN: No action will be performed as the --execute option is missing. Add --dry-run to keep this behaviour without the warning, or --execute to reset the offsets.")
	}
	ctx, cancel := adminContext(cmd)
	defer cancel()
	adm, err := newAdmin(ctx, cmd, &o.conn)
	if err != nil {
		return err
	}
	defer adm.Close()
	switch {
	case o.list:
		return o.runList(cmd, adm)
	case o.describe:
		return o.runDescribe(cmd, adm)
	case o.delete:
		return o.runDelete(cmd, adm)
	case o.resetOffsets:
		return o.runReset(cmd, adm)
	default:
		return o.runDeleteOffsets(cmd, adm)
	}
}

// groupStates are Kafka's consumer group states, matched case-insensitively.
var groupStates = []string{"PreparingRebalance", "CompletingRebalance", "Stable", "Dead", "Empty", "Assigning", "Reconciling"}

func parseStates(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		found := ""
		for _, st := range groupStates {
			if strings.EqualFold(st, part) {
				found = st
			}
		}
		if found == "" {
			return nil, fmt.Errorf("invalid state list '%s'. Valid states are: %s", s, strings.Join(groupStates, ", "))
		}
		out = append(out, found)
	}
	return out, nil
}

// consumerGroupsOnly keeps the groups Kafka's admin client calls consumer
// groups: protocol type "consumer", or none (offsets committed without
// membership).
func consumerGroupsOnly(ls kadm.ListedGroups) []kadm.ListedGroup {
	var out []kadm.ListedGroup
	for _, g := range ls.Sorted() {
		if g.ProtocolType == "consumer" || g.ProtocolType == "" {
			out = append(out, g)
		}
	}
	return out
}

func (o *groupsOptions) listGroups(cmd *cobra.Command, adm *adminClient, states ...string) ([]kadm.ListedGroup, error) {
	ctx, cancel := adminContext(cmd)
	defer cancel()
	ls, err := adm.ListGroups(ctx, states...)
	if err != nil {
		return nil, err
	}
	return consumerGroupsOnly(ls), nil
}

func (o *groupsOptions) runList(cmd *cobra.Command, adm *adminClient) error {
	var states []string
	if o.stateGiven && o.state != "" {
		var err error
		if states, err = parseStates(o.state); err != nil {
			return err
		}
	}
	var types []string
	if o.groupType != "" {
		for _, t := range strings.Split(strings.ToLower(o.groupType), ",") {
			t = strings.TrimSpace(t)
			if t != "classic" && t != "consumer" && t != "share" && t != "streams" {
				return fmt.Errorf("invalid types list '%s'. Valid types are: consumer, classic, share, streams", o.groupType)
			}
			types = append(types, t)
		}
	}
	groups, err := o.listGroups(cmd, adm, states...)
	if err != nil {
		return err
	}
	if len(types) > 0 {
		// Gregor's groups all speak the classic protocol.
		keep := false
		for _, t := range types {
			keep = keep || t == "classic"
		}
		if !keep {
			groups = nil
		}
	}
	out := cmd.OutOrStdout()
	if o.format == "json" {
		list := make([]listedGroupJSON, 0, len(groups))
		for _, g := range groups {
			list = append(list, listedGroupJSON{Group: g.Group, State: g.State, Type: "Classic", ProtocolType: g.ProtocolType, Coordinator: g.Coordinator})
		}
		return writeJSON(out, list)
	}
	withType := cmd.Flags().Changed("type")
	if !o.stateGiven && !withType {
		for _, g := range groups {
			fmt.Fprintln(out, g.Group)
		}
		return nil
	}
	width := 15
	for _, g := range groups {
		width = max(width, len(g.Group))
	}
	width += 10
	header := []string{"GROUP"}
	if withType {
		header = append(header, "TYPE")
	}
	if o.stateGiven {
		header = append(header, "STATE")
	}
	row := func(cols []string) {
		line := fmt.Sprintf("%-*s", width, cols[0])
		for _, c := range cols[1:] {
			line += fmt.Sprintf(" %-20s", c)
		}
		fmt.Fprintln(out, line)
	}
	row(header)
	for _, g := range groups {
		cols := []string{g.Group}
		if withType {
			cols = append(cols, "Classic")
		}
		if o.stateGiven {
			cols = append(cols, g.State)
		}
		row(cols)
	}
	return nil
}

type listedGroupJSON struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	Type         string `json:"type"`
	ProtocolType string `json:"protocol_type"`
	Coordinator  int32  `json:"coordinator"`
}

// groupNames resolves --group / --all-groups.
func (o *groupsOptions) groupNames(cmd *cobra.Command, adm *adminClient) ([]string, error) {
	if !o.allGroups {
		return o.groups, nil
	}
	groups, err := o.listGroups(cmd, adm)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(groups))
	for _, g := range groups {
		names = append(names, g.Group)
	}
	return names, nil
}

// offsetRow is one line of the --describe table; nil means "-".
type offsetRow struct {
	Group         string  `json:"-"`
	Topic         *string `json:"topic"`
	Partition     *int32  `json:"partition"`
	CurrentOffset *int64  `json:"current_offset"`
	LogEndOffset  *int64  `json:"log_end_offset"`
	Lag           *int64  `json:"lag"`
	ConsumerID    *string `json:"consumer_id"`
	Host          *string `json:"host"`
	ClientID      *string `json:"client_id"`
}

type memberJSON struct {
	ConsumerID  string             `json:"consumer_id"`
	InstanceID  *string            `json:"group_instance_id"`
	Host        string             `json:"host"`
	ClientID    string             `json:"client_id"`
	Partitions  int                `json:"partitions"`
	Assignments []assignedTopicJSN `json:"assignment"`
}

type assignedTopicJSN struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
}

type groupJSON struct {
	Group              string       `json:"group"`
	State              string       `json:"state"`
	ProtocolType       string       `json:"protocol_type"`
	AssignmentStrategy string       `json:"assignment_strategy"`
	Coordinator        coordJSON    `json:"coordinator"`
	Members            []memberJSON `json:"members"`
	Offsets            []offsetRow  `json:"offsets"`
}

type coordJSON struct {
	ID   int32  `json:"id"`
	Host string `json:"host"`
	Port int32  `json:"port"`
}

// groupView is everything --describe knows about one group.
type groupView struct {
	desc kadm.DescribedGroup
	rows []offsetRow
}

func ptr[T any](v T) *T { return &v }

// memberPartitions is a member's assignment as sorted topic partitions.
func memberPartitions(m kadm.DescribedGroupMember) []kadm.Partition {
	var ps []kadm.Partition
	if c, ok := m.Assigned.AsConsumer(); ok {
		for _, t := range c.Topics {
			for _, p := range t.Partitions {
				ps = append(ps, kadm.Partition{Topic: t.Topic, Partition: p})
			}
		}
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Topic != ps[j].Topic {
			return ps[i].Topic < ps[j].Topic
		}
		return ps[i].Partition < ps[j].Partition
	})
	return ps
}

// collect describes the groups and, when withOffsets, builds the offset
// rows the way Kafka does: members with partitions first (most partitions
// first), then committed partitions no member holds, with "-" member
// columns.
func (o *groupsOptions) collect(cmd *cobra.Command, adm *adminClient, names []string, withOffsets bool) ([]groupView, error) {
	ctx, cancel := adminContext(cmd)
	defer cancel()
	described, err := adm.DescribeGroups(ctx, names...)
	if err != nil && len(described) == 0 {
		return nil, err
	}
	var views []groupView
	for _, name := range names {
		d, ok := described[name]
		if !ok {
			return nil, fmt.Errorf("consumer group '%s' could not be described", name)
		}
		if d.Err != nil {
			return nil, fmt.Errorf("consumer group '%s': %v", name, kafkaError(d.Err, d.ErrMessage))
		}
		v := groupView{desc: d}
		if withOffsets && d.State != "Dead" {
			fetched, err := adm.FetchOffsets(ctx, name)
			if err != nil {
				return nil, fmt.Errorf("consumer group '%s': fetching offsets: %w", name, err)
			}
			committed := map[kadm.Partition]int64{}
			fetched.Each(func(r kadm.OffsetResponse) {
				if r.Err == nil && r.At >= 0 {
					committed[kadm.Partition{Topic: r.Topic, Partition: r.Partition}] = r.At
				}
			})
			type memberRows struct {
				m  kadm.DescribedGroupMember
				ps []kadm.Partition
			}
			var ms []memberRows
			assigned := map[kadm.Partition]bool{}
			topics := map[string]bool{}
			for _, m := range d.Members {
				ps := memberPartitions(m)
				if len(ps) == 0 {
					continue
				}
				ms = append(ms, memberRows{m, ps})
				for _, p := range ps {
					assigned[p] = true
					topics[p.Topic] = true
				}
			}
			sort.SliceStable(ms, func(i, j int) bool { return len(ms[i].ps) > len(ms[j].ps) })
			var unassigned []kadm.Partition
			for p := range committed {
				if !assigned[p] {
					unassigned = append(unassigned, p)
					topics[p.Topic] = true
				}
			}
			sort.Slice(unassigned, func(i, j int) bool {
				if unassigned[i].Topic != unassigned[j].Topic {
					return unassigned[i].Topic < unassigned[j].Topic
				}
				return unassigned[i].Partition < unassigned[j].Partition
			})
			var ends kadm.ListedOffsets
			if len(topics) > 0 {
				tl := make([]string, 0, len(topics))
				for t := range topics {
					tl = append(tl, t)
				}
				if ends, err = adm.ListEndOffsets(ctx, tl...); err != nil {
					return nil, fmt.Errorf("listing end offsets: %w", err)
				}
			}
			row := func(p kadm.Partition, consumer, host, client *string) offsetRow {
				r := offsetRow{Group: name, Topic: ptr(p.Topic), Partition: ptr(p.Partition), ConsumerID: consumer, Host: host, ClientID: client}
				if at, ok := committed[p]; ok {
					r.CurrentOffset = ptr(at)
				}
				if lo, ok := ends.Lookup(p.Topic, p.Partition); ok && lo.Err == nil && lo.Offset >= 0 {
					r.LogEndOffset = ptr(lo.Offset)
					if r.CurrentOffset != nil {
						r.Lag = ptr(lo.Offset - *r.CurrentOffset)
					}
				}
				return r
			}
			for _, mr := range ms {
				for _, p := range mr.ps {
					v.rows = append(v.rows, row(p, ptr(mr.m.MemberID), ptr(mr.m.ClientHost), ptr(mr.m.ClientID)))
				}
			}
			for _, p := range unassigned {
				v.rows = append(v.rows, row(p, ptr(missing), ptr(missing), ptr(missing)))
			}
		}
		views = append(views, v)
	}
	return views, nil
}

// noteState prints Kafka's note about an inactive or rebalancing group and
// reports whether the group exists.
func noteState(w io.Writer, group, state string) bool {
	switch state {
	case "Dead":
		return false
	case "Empty":
		fmt.Fprintf(w, "\nConsumer group '%s' has no active members.\n", group)
	case "PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling":
		fmt.Fprintf(w, "\nWarning: Consumer group '%s' is rebalancing.\n", group)
	}
	return true
}

func str(p *string) string {
	if p == nil {
		return missing
	}
	return *p
}

func num[T int32 | int64](p *T) string {
	if p == nil {
		return missing
	}
	return strconv.FormatInt(int64(*p), 10)
}

func (o *groupsOptions) runDescribe(cmd *cobra.Command, adm *adminClient) error {
	names, err := o.groupNames(cmd, adm)
	if err != nil {
		return err
	}
	sort.Strings(names)
	withOffsets := !o.members && !o.stateGiven
	views, err := o.collect(cmd, adm, names, withOffsets || o.format == "json")
	if err != nil {
		return err
	}
	out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if o.format == "json" {
		return writeJSON(out, groupsJSON(views))
	}
	var missingGroups []string
	for _, v := range views {
		d := v.desc
		if d.State == "Dead" {
			missingGroups = append(missingGroups, d.Group)
			continue
		}
		switch {
		case withOffsets:
			noteState(errw, d.Group, d.State)
			if len(v.rows) == 0 {
				continue
			}
			gw, tw, cw, hw := 15, 15, 15, 15
			for _, r := range v.rows {
				gw = max(gw, len(r.Group))
				tw = max(tw, len(str(r.Topic)))
				cw = max(cw, len(str(r.ConsumerID)))
				hw = max(hw, len(str(r.Host)))
			}
			line := func(cols ...string) {
				fmt.Fprintf(out, "\n%-*s %-*s %-10s %-15s %-15s %-15s %-*s %-*s %s",
					gw, cols[0], tw, cols[1], cols[2], cols[3], cols[4], cols[5], cw, cols[6], hw, cols[7], cols[8])
			}
			line("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID")
			for _, r := range v.rows {
				line(r.Group, str(r.Topic), num(r.Partition), num(r.CurrentOffset), num(r.LogEndOffset), num(r.Lag), str(r.ConsumerID), str(r.Host), str(r.ClientID))
			}
			fmt.Fprintln(out)
		case o.members:
			o.printMembers(out, errw, d)
		default:
			noteState(errw, d.Group, d.State)
			coord := fmt.Sprintf("%s:%d  (%d)", d.Coordinator.Host, d.Coordinator.Port, d.Coordinator.NodeID)
			cw := max(25, len(coord))
			line := func(cols ...string) {
				fmt.Fprintf(out, "\n%-*s %-25s %-20s %-15s %s", cw, cols[0], cols[1], cols[2], cols[3], cols[4])
			}
			line("GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS")
			line(d.Group, coord, d.Protocol, d.State, strconv.Itoa(len(d.Members)))
			fmt.Fprintln(out)
		}
	}
	if len(missingGroups) > 0 {
		for _, g := range missingGroups[1:] {
			fmt.Fprintf(errw, "gregor: consumer group '%s' does not exist\n", g)
		}
		return fmt.Errorf("consumer group '%s' does not exist", missingGroups[0])
	}
	return nil
}

func (o *groupsOptions) printMembers(out, errw io.Writer, d kadm.DescribedGroup) {
	noteState(errw, d.Group, d.State)
	gw, cw, iw, hw, lw := 15, 15, 17, 15, 15
	withInstance := false
	for _, m := range d.Members {
		gw = max(gw, len(d.Group))
		cw = max(cw, len(m.MemberID))
		hw = max(hw, len(m.ClientHost))
		lw = max(lw, len(m.ClientID))
		if m.InstanceID != nil && *m.InstanceID != "" {
			withInstance = true
			iw = max(iw, len(*m.InstanceID))
		}
	}
	line := func(group, consumer, instance, host, client, parts string) {
		if withInstance {
			fmt.Fprintf(out, "%-*s %-*s %-*s %-*s %-*s %-15s ", gw, group, cw, consumer, iw, instance, hw, host, lw, client, parts)
		} else {
			fmt.Fprintf(out, "%-*s %-*s %-*s %-*s %-15s ", gw, group, cw, consumer, hw, host, lw, client, parts)
		}
	}
	fmt.Fprintln(out)
	line("GROUP", "CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS")
	if o.verbose {
		fmt.Fprint(out, "ASSIGNMENT")
	}
	fmt.Fprintln(out)
	for _, m := range d.Members {
		ps := memberPartitions(m)
		line(d.Group, m.MemberID, deref(m.InstanceID), m.ClientHost, m.ClientID, strconv.Itoa(len(ps)))
		if o.verbose {
			fmt.Fprint(out, assignmentString(ps))
		}
		fmt.Fprintln(out)
	}
}

// assignmentString renders partitions as "topic(0,1), other(2)".
func assignmentString(ps []kadm.Partition) string {
	if len(ps) == 0 {
		return missing
	}
	var parts []string
	for i := 0; i < len(ps); {
		j := i
		var nums []string
		for ; j < len(ps) && ps[j].Topic == ps[i].Topic; j++ {
			nums = append(nums, strconv.Itoa(int(ps[j].Partition)))
		}
		parts = append(parts, ps[i].Topic+"("+strings.Join(nums, ",")+")")
		i = j
	}
	return strings.Join(parts, ", ")
}

func groupsJSON(views []groupView) []groupJSON {
	out := make([]groupJSON, 0, len(views))
	for _, v := range views {
		d := v.desc
		g := groupJSON{
			Group: d.Group, State: d.State, ProtocolType: d.ProtocolType, AssignmentStrategy: d.Protocol,
			Coordinator: coordJSON{ID: d.Coordinator.NodeID, Host: d.Coordinator.Host, Port: d.Coordinator.Port},
			Members:     []memberJSON{}, Offsets: v.rows,
		}
		if g.Offsets == nil {
			g.Offsets = []offsetRow{}
		}
		for _, m := range d.Members {
			ps := memberPartitions(m)
			mj := memberJSON{ConsumerID: m.MemberID, InstanceID: m.InstanceID, Host: m.ClientHost, ClientID: m.ClientID, Partitions: len(ps), Assignments: []assignedTopicJSN{}}
			for _, p := range ps {
				if n := len(mj.Assignments); n == 0 || mj.Assignments[n-1].Topic != p.Topic {
					mj.Assignments = append(mj.Assignments, assignedTopicJSN{Topic: p.Topic})
				}
				last := &mj.Assignments[len(mj.Assignments)-1]
				last.Partitions = append(last.Partitions, p.Partition)
			}
			g.Members = append(g.Members, mj)
		}
		out = append(out, g)
	}
	return out
}

func (o *groupsOptions) runDelete(cmd *cobra.Command, adm *adminClient) error {
	names, err := o.groupNames(cmd, adm)
	if err != nil {
		return err
	}
	ctx, cancel := adminContext(cmd)
	defer cancel()
	resps, err := adm.DeleteGroups(ctx, names...)
	if err != nil && len(resps) == 0 {
		return err
	}
	out := cmd.OutOrStdout()
	var ok, failed []string
	for _, n := range names {
		r, found := resps[n]
		switch {
		case !found:
			failed = append(failed, fmt.Sprintf("* Group '%s' could not be deleted due to: no response", n))
		case r.Err != nil:
			failed = append(failed, fmt.Sprintf("* Group '%s' could not be deleted due to: %v", n, groupDeleteError(r.Err)))
		default:
			ok = append(ok, n)
		}
	}
	if len(failed) == 0 {
		fmt.Fprintf(out, "Deletion of requested consumer groups ('%s') was successful.\n", strings.Join(ok, "', '"))
		return nil
	}
	fmt.Fprintln(out, "\nError: Deletion of some consumer groups failed:")
	for _, f := range failed {
		fmt.Fprintln(out, f)
	}
	if len(ok) > 0 {
		fmt.Fprintf(out, "\nThese consumer groups were deleted successfully: '%s'\n", strings.Join(ok, "', '"))
	}
	return errAlreadyReported
}

func groupDeleteError(err error) string {
	switch {
	case errors.Is(err, kerr.NonEmptyGroup):
		return "the group is not empty (stop its consumers first)"
	case errors.Is(err, kerr.GroupIDNotFound):
		return "the group does not exist"
	}
	return err.Error()
}

func (o *groupsOptions) runDeleteOffsets(cmd *cobra.Command, adm *adminClient) error {
	group := o.groups[0]
	ctx, cancel := adminContext(cmd)
	defer cancel()
	set := kadm.TopicsSet{}
	type status struct {
		topic     string
		partition int32
		err       error
	}
	var results []status
	var plain []string
	for _, t := range o.topics {
		if strings.Contains(t, ":") {
			ps, err := parseTopicPartitions(t)
			if err != nil {
				return err
			}
			for _, p := range ps {
				set.Add(p.Topic, p.Partition)
			}
		} else {
			plain = append(plain, t)
		}
	}
	if len(plain) > 0 {
		tds, err := adm.ListTopics(ctx, plain...)
		if err != nil {
			return err
		}
		for _, t := range plain {
			td, ok := tds[t]
			if !ok || td.Err != nil {
				err := error(kerr.UnknownTopicOrPartition)
				if ok {
					err = td.Err
				}
				results = append(results, status{t, -1, err})
				continue
			}
			for p := range td.Partitions {
				set.Add(t, p)
			}
		}
	}
	out := cmd.OutOrStdout()
	resps, topErr := adm.DeleteOffsets(ctx, group, set)
	for t, ps := range set {
		for p := range ps {
			var err error
			if topErr != nil {
				err = topErr
			} else if e, ok := resps.Lookup(t, p); ok {
				err = e
			}
			results = append(results, status{t, p, err})
		}
	}
	failed := topErr != nil
	switch {
	case topErr == nil:
		for _, r := range results {
			failed = failed || r.err != nil
		}
		if failed {
			fmt.Fprintln(out, "\nError: Encounter some partition level error, see the follow-up details:")
		} else {
			fmt.Fprintf(out, "Request succeed for deleting offsets with topic %s group %s\n", strings.Join(o.topics, ", "), group)
		}
	case errors.Is(topErr, kerr.GroupIDNotFound):
		fmt.Fprintf(out, "\nError: '%s' does not exist.\n", group)
	case errors.Is(topErr, kerr.NonEmptyGroup):
		fmt.Fprintf(out, "\nError: Deleting offsets of a consumer group '%s' is forbidden if the group is not empty.\n", group)
	case errors.Is(topErr, kerr.InvalidGroupID):
		fmt.Fprintf(out, "\nError: '%s' is not valid.\n", group)
	default:
		fmt.Fprintf(out, "\nError: Encounter some unknown error: %v\n", topErr)
	}
	sort.Slice(results, func(i, j int) bool {
		return results[i].topic+strconv.Itoa(int(results[i].partition)) < results[j].topic+strconv.Itoa(int(results[j].partition))
	})
	fmt.Fprintf(out, "\n%-30s %-15s %-15s", "TOPIC", "PARTITION", "STATUS")
	for _, r := range results {
		p := "Not Provided"
		if r.partition >= 0 {
			p = strconv.Itoa(int(r.partition))
		}
		st := "Successful"
		if r.err != nil {
			st = "Error: :" + r.err.Error()
		}
		fmt.Fprintf(out, "\n%-30s %-15s %-15s", r.topic, p, st)
	}
	fmt.Fprintln(out)
	if failed {
		return errAlreadyReported
	}
	return nil
}

// parseTopicPartitions reads "topic:0,1,2".
func parseTopicPartitions(arg string) ([]kadm.Partition, error) {
	topic, parts, _ := strings.Cut(arg, ":")
	if topic == "" || parts == "" || strings.Contains(parts, ":") {
		return nil, fmt.Errorf("invalid topic arg '%s', expected topic name and partitions", arg)
	}
	var out []kadm.Partition
	for _, p := range strings.Split(parts, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("invalid partition '%s' specified in topic arg '%s'", p, arg)
		}
		out = append(out, kadm.Partition{Topic: topic, Partition: int32(n)})
	}
	return out, nil
}

// parseDatetime reads Kafka's --to-datetime format, yyyy-MM-ddTHH:mm:ss.SSS
// with an optional zone (UTC without one), seconds and millis optional.
func parseDatetime(s string) (time.Time, error) {
	layouts := []string{
		"2006-01-02T15:04:05.000Z07:00", "2006-01-02T15:04:05.000Z0700", "2006-01-02T15:04:05.000Z07",
		"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05Z07",
		"2006-01-02T15:04Z07:00",
	}
	date, tpart, ok := strings.Cut(s, "T")
	if !ok || date == "" {
		return time.Time{}, fmt.Errorf("error parsing timestamp '%s': it does not contain a 'T' according to ISO8601 format", s)
	}
	if !strings.ContainsAny(tpart, "+-Z") {
		s += "Z"
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("error parsing timestamp '%s': want YYYY-MM-DDTHH:mm:SS.sss, optionally with a zone like Z or +08:00", s)
}

// parseISODuration reads the PnDTnHnMnS durations Java's Duration.parse
// takes (days, hours, minutes, fractional seconds; a leading '-' negates).
func parseISODuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("text cannot be parsed to a Duration: %s", s)
	in := strings.ToUpper(strings.TrimSpace(s))
	neg := strings.HasPrefix(in, "-")
	in = strings.TrimPrefix(strings.TrimPrefix(in, "-"), "+")
	if !strings.HasPrefix(in, "P") || len(in) < 2 {
		return 0, bad
	}
	in = in[1:]
	var d time.Duration
	inTime := false
	for in != "" {
		if in[0] == 'T' {
			if inTime {
				return 0, bad
			}
			inTime, in = true, in[1:]
			continue
		}
		i := strings.IndexAny(in, "DHMS")
		if i <= 0 {
			return 0, bad
		}
		v, err := strconv.ParseFloat(in[:i], 64)
		if err != nil {
			return 0, bad
		}
		unit := map[byte]time.Duration{'D': 24 * time.Hour, 'H': time.Hour, 'M': time.Minute, 'S': time.Second}[in[i]]
		if (in[i] == 'D') == inTime {
			return 0, bad
		}
		d += time.Duration(v * float64(unit))
		in = in[i+1:]
	}
	if neg {
		d = -d
	}
	return d, nil
}

// readResetPlan reads --from-file: "topic,partition,offset" lines (for one
// group) or "group,topic,partition,offset".
func readResetPlan(path string, groups []string) (map[string]map[kadm.Partition]int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	plan := map[string]map[kadm.Partition]int64{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		var group string
		switch {
		case len(f) == 3 && len(groups) == 1:
			group = groups[0]
		case len(f) == 4:
			group, f = f[0], f[1:]
		default:
			return nil, fmt.Errorf("%s line %d: want topic,partition,offset or group,topic,partition,offset", path, i+1)
		}
		p, err1 := strconv.ParseInt(f[1], 10, 32)
		off, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s line %d: bad partition or offset", path, i+1)
		}
		if plan[group] == nil {
			plan[group] = map[kadm.Partition]int64{}
		}
		plan[group][kadm.Partition{Topic: f[0], Partition: int32(p)}] = off
	}
	return plan, nil
}

type resetRow struct {
	group  string
	p      kadm.Partition
	offset int64
}

func (o *groupsOptions) runReset(cmd *cobra.Command, adm *adminClient) error {
	names, err := o.groupNames(cmd, adm)
	if err != nil {
		return err
	}
	views, err := o.collect(cmd, adm, names, false)
	if err != nil {
		return err
	}
	var plan map[string]map[kadm.Partition]int64
	if o.fromFile != "" {
		if plan, err = readResetPlan(o.fromFile, names); err != nil {
			return err
		}
	}
	ctx, cancel := adminContext(cmd)
	defer cancel()
	errw := cmd.ErrOrStderr()
	var rows []resetRow
	for _, v := range views {
		group := v.desc.Group
		if v.desc.State != "Empty" && v.desc.State != "Dead" {
			return fmt.Errorf("assignments can only be reset if the group '%s' is inactive, but the current state is %s", group, v.desc.State)
		}
		fetched, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return fmt.Errorf("consumer group '%s': fetching offsets: %w", group, err)
		}
		committed := map[kadm.Partition]int64{}
		fetched.Each(func(r kadm.OffsetResponse) {
			if r.Err == nil && r.At >= 0 {
				committed[kadm.Partition{Topic: r.Topic, Partition: r.Partition}] = r.At
			}
		})
		parts, err := o.partitionsToReset(ctx, adm, group, committed, plan)
		if err != nil {
			return err
		}
		if len(parts) == 0 {
			continue
		}
		offsets, err := o.newOffsets(ctx, adm, errw, group, parts, committed, plan)
		if err != nil {
			return err
		}
		var groupRows []resetRow
		for _, p := range parts {
			groupRows = append(groupRows, resetRow{group, p, offsets[p]})
		}
		if o.execute {
			commit := kadm.Offsets{}
			for _, r := range groupRows {
				commit.Add(kadm.Offset{Topic: r.p.Topic, Partition: r.p.Partition, At: r.offset, LeaderEpoch: -1})
			}
			resps, err := adm.CommitOffsets(ctx, group, commit)
			if err != nil {
				return fmt.Errorf("consumer group '%s': committing offsets: %w", group, err)
			}
			if err := resps.Error(); err != nil {
				return fmt.Errorf("consumer group '%s': committing offsets: %w", group, err)
			}
		}
		rows = append(rows, groupRows...)
	}
	out := cmd.OutOrStdout()
	if o.export {
		for _, r := range rows {
			if len(names) == 1 {
				fmt.Fprintf(out, "%s,%d,%d\n", r.p.Topic, r.p.Partition, r.offset)
			} else {
				fmt.Fprintf(out, "%s,%s,%d,%d\n", r.group, r.p.Topic, r.p.Partition, r.offset)
			}
		}
		return nil
	}
	if len(rows) > 0 {
		fmt.Fprintf(out, "\n%-30s %-30s %-10s %-15s", "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET")
	}
	for _, r := range rows {
		fmt.Fprintf(out, "\n%-30s %-30s %-10d %-15d", r.group, r.p.Topic, r.p.Partition, r.offset)
	}
	fmt.Fprintln(out)
	return nil
}

// partitionsToReset resolves the reset scope for one group, sorted.
func (o *groupsOptions) partitionsToReset(ctx context.Context, adm *adminClient, group string, committed map[kadm.Partition]int64, plan map[string]map[kadm.Partition]int64) ([]kadm.Partition, error) {
	seen := map[kadm.Partition]bool{}
	var out []kadm.Partition
	add := func(p kadm.Partition) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	switch {
	case o.allTopics:
		for p := range committed {
			add(p)
		}
	case len(o.topics) > 0:
		var plain []string
		for _, t := range o.topics {
			if strings.Contains(t, ":") {
				ps, err := parseTopicPartitions(t)
				if err != nil {
					return nil, err
				}
				for _, p := range ps {
					add(p)
				}
			} else {
				plain = append(plain, t)
			}
		}
		if len(plain) > 0 {
			tds, err := adm.ListTopics(ctx, plain...)
			if err != nil {
				return nil, err
			}
			for _, t := range plain {
				td, ok := tds[t]
				if !ok || td.Err != nil {
					return nil, fmt.Errorf("topic '%s' does not exist", t)
				}
				for _, p := range td.Partitions.Numbers() {
					add(kadm.Partition{Topic: t, Partition: p})
				}
			}
		}
	default:
		for p := range plan[group] {
			add(p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out, nil
}

// newOffsets computes the target offset of every partition.
func (o *groupsOptions) newOffsets(ctx context.Context, adm *adminClient, errw io.Writer, group string, parts []kadm.Partition, committed map[kadm.Partition]int64, plan map[string]map[kadm.Partition]int64) (map[kadm.Partition]int64, error) {
	topics := map[string]bool{}
	for _, p := range parts {
		topics[p.Topic] = true
	}
	var tl []string
	for t := range topics {
		tl = append(tl, t)
	}
	sort.Strings(tl)
	starts, err := adm.ListStartOffsets(ctx, tl...)
	if err != nil {
		return nil, err
	}
	ends, err := adm.ListEndOffsets(ctx, tl...)
	if err != nil {
		return nil, err
	}
	lookup := func(l kadm.ListedOffsets, p kadm.Partition, what string) (int64, error) {
		lo, ok := l.Lookup(p.Topic, p.Partition)
		if !ok || lo.Err != nil {
			return 0, fmt.Errorf("error getting %s offset of topic partition: %s-%d", what, p.Topic, p.Partition)
		}
		return lo.Offset, nil
	}
	// clamp keeps a requested offset inside the log, with Kafka's warning.
	clamp := func(p kadm.Partition, off int64) (int64, error) {
		end, err := lookup(ends, p, "ending")
		if err != nil {
			return 0, err
		}
		start, err := lookup(starts, p, "starting")
		if err != nil {
			return 0, err
		}
		switch {
		case off > end:
			fmt.Fprintf(errw, "WARN: New offset (%d) is higher than latest offset for topic partition %s-%d. Value will be set to %d\n", off, p.Topic, p.Partition, end)
			return end, nil
		case off < start:
			fmt.Fprintf(errw, "WARN: New offset (%d) is lower than earliest offset for topic partition %s-%d. Value will be set to %d\n", off, p.Topic, p.Partition, start)
			return start, nil
		}
		return off, nil
	}
	out := map[kadm.Partition]int64{}
	var byTime kadm.ListedOffsets
	if o.toDatetime != "" || o.byDuration != "" {
		var ts time.Time
		if o.toDatetime != "" {
			if ts, err = parseDatetime(o.toDatetime); err != nil {
				return nil, err
			}
		} else {
			d, err := parseISODuration(o.byDuration)
			if err != nil {
				return nil, err
			}
			ts = time.Now().Add(-d)
		}
		if byTime, err = adm.ListOffsetsAfterMilli(ctx, ts.UnixMilli(), tl...); err != nil {
			return nil, err
		}
	}
	for _, p := range parts {
		var off int64
		switch o.scenario {
		case "to-earliest":
			off, err = lookup(starts, p, "starting")
		case "to-latest":
			off, err = lookup(ends, p, "ending")
		case "to-current":
			if c, ok := committed[p]; ok {
				off = c
			} else {
				off, err = lookup(ends, p, "ending")
			}
		case "to-datetime", "by-duration":
			lo, ok := byTime.Lookup(p.Topic, p.Partition)
			switch {
			case !ok || lo.Err != nil:
				err = fmt.Errorf("error getting offset by timestamp of topic partition: %s-%d", p.Topic, p.Partition)
			case lo.Offset < 0:
				fmt.Fprintf(errw, "\nWarn: Partition %d from topic %s is empty. Falling back to latest known offset.\n", p.Partition, p.Topic)
				off, err = lookup(ends, p, "ending")
			default:
				off = lo.Offset
			}
		case "from-file":
			off, err = clamp(p, plan[group][p])
		case "shift-by":
			c, ok := committed[p]
			if !ok {
				return nil, fmt.Errorf("cannot shift offset for partition %s-%d since there is no current committed offset", p.Topic, p.Partition)
			}
			off, err = clamp(p, c+o.shiftBy)
		default: // --to-offset
			off, err = clamp(p, o.toOffset)
		}
		if err != nil {
			return nil, err
		}
		out[p] = off
	}
	return out, nil
}
