package console

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/gregorhq/gregor/internal/metadata"
)

type brokerRow struct {
	ID         int32
	Addr       string
	Rack       string
	Controller bool
	APIs       string // the Kafka APIs it serves, from ApiVersions
}

type overviewData struct {
	ClusterID  string
	Version    string
	Brokers    []brokerRow
	Topics     int
	Partitions int
	Groups     int
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	md, err := c.adm.BrokerMetadata(ctx)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	topics, err := c.adm.ListTopicsWithInternal(ctx)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	groups, _ := c.adm.ListGroups(ctx)
	versions, _ := c.adm.ApiVersions(ctx)
	d := overviewData{ClusterID: md.Cluster, Version: c.opts.Version, Topics: len(topics), Groups: len(groups)}
	for _, t := range topics {
		d.Partitions += len(t.Partitions)
	}
	for _, b := range md.Brokers {
		row := brokerRow{ID: b.NodeID, Addr: fmt.Sprintf("%s:%d", b.Host, b.Port), Controller: b.NodeID == md.Controller}
		if b.Rack != nil {
			row.Rack = *b.Rack
		}
		if v, ok := versions[b.NodeID]; ok && v.Err == nil {
			row.APIs = apiSummary(&v)
		}
		d.Brokers = append(d.Brokers, row)
	}
	c.render(w, r, "overview", "Overview", "overview", d)
}

type topicRow struct {
	Name       string
	Internal   bool
	Partitions int
	Size       int64
	Retention  string
	Rate       float64
}

// logDirSizes sums the partition sizes every broker reports for its log
// dirs: topic → partition → bytes.
func logDirSizes(all kadm.DescribedAllLogDirs) map[string]map[int32]int64 {
	out := map[string]map[int32]int64{}
	all.Each(func(d kadm.DescribedLogDir) {
		for t, ps := range d.Topics {
			if out[t] == nil {
				out[t] = map[int32]int64{}
			}
			for p, dp := range ps {
				out[t][p] += dp.Size
			}
		}
	})
	return out
}

func configValue(rc kadm.ResourceConfig, key string) string {
	for _, cf := range rc.Configs {
		if cf.Key == key {
			return cf.MaybeValue()
		}
	}
	return ""
}

func (c *Console) topics(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	topics, err := c.adm.ListTopicsWithInternal(ctx)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	dirs, _ := c.adm.DescribeAllLogDirs(ctx, nil)
	sizes := logDirSizes(dirs)
	configs, _ := c.adm.DescribeTopicConfigs(ctx, topics.Names()...)
	var rows []topicRow
	for _, name := range topics.Names() {
		t := topics[name]
		row := topicRow{Name: name, Internal: t.IsInternal, Partitions: len(t.Partitions), Rate: c.hist.latestRate(name)}
		for _, s := range sizes[name] {
			row.Size += s
		}
		if rc, err := configs.On(name, nil); err == nil {
			row.Retention = retention(configValue(rc, "retention.ms"))
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Internal != rows[j].Internal {
			return !rows[i].Internal
		}
		return rows[i].Name < rows[j].Name
	})
	c.render(w, r, "topics", "Topics", "topics", rows)
}

// retention shows retention.ms the way people say it.
func retention(ms string) string {
	var n int64
	if _, err := fmt.Sscan(ms, &n); err != nil {
		return ms
	}
	switch {
	case n < 0:
		return "forever"
	case n%(24*3600_000) == 0:
		return fmt.Sprintf("%dd", n/(24*3600_000))
	case n%3600_000 == 0:
		return fmt.Sprintf("%dh", n/3600_000)
	case n%60_000 == 0:
		return fmt.Sprintf("%dm", n/60_000)
	}
	return fmt.Sprintf("%dms", n)
}

type partitionRow struct {
	Partition  int32
	Leader     int32
	Replicas   []int32
	ISR        []int32
	Start, End int64
	Messages   int64
	Size       int64
	Err        string
}

type configRow struct {
	Key, Value, Source string
	Sensitive          bool
}

type topicData struct {
	Name       string
	ID         string
	Internal   bool
	Partitions []partitionRow
	Configs    []configRow
	Size       int64
	Browse     browseForm
}

func (c *Console) topic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("topic")
	ctx, cancel := reqCtx(r)
	defer cancel()
	topics, err := c.adm.ListTopicsWithInternal(ctx, name)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	t, ok := topics[name]
	if !ok || t.Err != nil {
		http.Error(w, fmt.Sprintf("topic %q: %v", name, t.Err), http.StatusNotFound)
		return
	}
	starts, _ := c.adm.ListStartOffsets(ctx, name)
	ends, _ := c.adm.ListEndOffsets(ctx, name)
	dirs, _ := c.adm.DescribeAllLogDirs(ctx, nil)
	sizes := logDirSizes(dirs)[name]
	// Kafka prints topic ids unpadded (Uuid.toString); kadm's String pads.
	d := topicData{Name: name, ID: metadata.UUID(t.ID).String(), Internal: t.IsInternal, Browse: parseBrowse(r)}
	for _, p := range t.Partitions.Sorted() {
		row := partitionRow{Partition: p.Partition, Leader: p.Leader, Replicas: p.Replicas, ISR: p.ISR, Size: sizes[p.Partition]}
		if p.Err != nil {
			row.Err = p.Err.Error()
		}
		if o, ok := starts.Lookup(name, p.Partition); ok && o.Err == nil {
			row.Start = o.Offset
		}
		if o, ok := ends.Lookup(name, p.Partition); ok && o.Err == nil {
			row.End = o.Offset
		}
		row.Messages = row.End - row.Start
		d.Size += row.Size
		d.Partitions = append(d.Partitions, row)
	}
	if rcs, err := c.adm.DescribeTopicConfigs(ctx, name); err == nil {
		if rc, err := rcs.On(name, nil); err == nil {
			for _, cf := range rc.Configs {
				d.Configs = append(d.Configs, configRow{Key: cf.Key, Value: cf.MaybeValue(), Sensitive: cf.Sensitive,
					Source: strings.ToLower(strings.TrimSuffix(cf.Source.String(), "_CONFIG"))})
			}
			sort.Slice(d.Configs, func(i, j int) bool { return d.Configs[i].Key < d.Configs[j].Key })
		}
	}
	c.render(w, r, "topic", "Topic "+name, "topics", d)
}

type groupRow struct {
	Name     string
	State    string
	Protocol string
	Members  int
	Lag      int64
	Err      string
}

func (c *Console) groups(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	listed, err := c.adm.ListGroups(ctx)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	var rows []groupRow
	if len(listed) > 0 {
		lags, err := c.adm.Lag(ctx, listed.Groups()...)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		for _, l := range lags.Sorted() {
			row := groupRow{Name: l.Group, State: l.State, Protocol: l.Protocol, Members: len(l.Members), Lag: l.Lag.Total()}
			if err := l.Error(); err != nil {
				row.Err = err.Error()
			}
			rows = append(rows, row)
		}
	}
	c.render(w, r, "groups", "Consumer groups", "groups", rows)
}

type memberRow struct {
	ID, ClientID, Host string
	Assigned           []string // topic: partitions
}

type lagRow struct {
	Topic     string
	Partition int32
	Committed int64
	End       int64
	Lag       int64
	Member    string
	Err       string
}

type groupData struct {
	Name     string
	State    string
	Protocol string
	Members  []memberRow
	Lags     []lagRow
	TotalLag int64
	Topics   []string
	Err      string
}

func (c *Console) groupData(r *http.Request) (groupData, error) {
	name := r.PathValue("group")
	ctx, cancel := reqCtx(r)
	defer cancel()
	lags, err := c.adm.Lag(ctx, name)
	if err != nil {
		return groupData{}, err
	}
	l := lags[name]
	d := groupData{Name: name, State: l.State, Protocol: l.Protocol, TotalLag: l.Lag.Total()}
	if err := l.Error(); err != nil {
		d.Err = err.Error()
	}
	for _, m := range l.Members {
		mr := memberRow{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				ps := append([]int32(nil), t.Partitions...)
				sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
				mr.Assigned = append(mr.Assigned, t.Topic+": "+joinInt32s(ps))
			}
		}
		d.Members = append(d.Members, mr)
	}
	seen := map[string]bool{}
	for _, ml := range l.Lag.Sorted() {
		row := lagRow{Topic: ml.Topic, Partition: ml.Partition, Committed: ml.Commit.At, End: ml.End.Offset, Lag: ml.Lag}
		if ml.Member != nil {
			row.Member = ml.Member.ClientID
		}
		if ml.Err != nil {
			row.Err = ml.Err.Error()
		}
		if !seen[ml.Topic] {
			seen[ml.Topic] = true
			d.Topics = append(d.Topics, ml.Topic)
		}
		d.Lags = append(d.Lags, row)
	}
	return d, nil
}

func (c *Console) group(w http.ResponseWriter, r *http.Request) {
	d, err := c.groupData(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, "group", "Group "+d.Name, "groups", d)
}

// groupLagTable is the group page's lag table alone, which htmx reloads.
func (c *Console) groupLagTable(w http.ResponseWriter, r *http.Request) {
	d, err := c.groupData(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, "grouplag", "Group "+d.Name, "groups", d)
}

// apiSummary tells how many Kafka APIs a broker serves and the versions of
// the ones clients depend on most.
func apiSummary(v *kadm.BrokerApiVersions) string {
	n := 0
	v.EachKeySorted(func(int16, int16, int16) { n++ })
	out := fmt.Sprintf("%d APIs", n)
	for _, k := range []struct {
		key  int16
		name string
	}{{0, "Produce"}, {1, "Fetch"}, {3, "Metadata"}} {
		if lo, hi, ok := v.KeyVersions(k.key); ok {
			out += fmt.Sprintf(", %s v%d–%d", k.name, lo, hi)
		}
	}
	return out
}
