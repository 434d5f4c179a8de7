package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
)

// Admin actions (gregor.console.admin.enable). Each is one Kafka admin
// request, as kafka-topics.sh, kafka-configs.sh, kafka-consumer-groups.sh
// and kafka-delete-records.sh would send it, and redirects back to the
// page with the outcome.

func (c *Console) createTopic(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.FormValue("name"))
	parts, err := strconv.Atoi(r.FormValue("partitions"))
	if err != nil || parts < 1 {
		done(w, r, "/topics", errors.New("partitions must be a number >= 1"), "")
		return
	}
	configs := map[string]*string{}
	for _, line := range strings.Split(r.FormValue("configs"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			done(w, r, "/topics", fmt.Errorf("config %q: want key=value", line), "")
			return
		}
		v = strings.TrimSpace(v)
		configs[strings.TrimSpace(k)] = &v
	}
	ctx, cancel := reqCtx(r)
	defer cancel()
	res, err := c.adm.CreateTopic(ctx, int32(parts), -1, configs, name)
	if err == nil {
		err = res.Err
	}
	done(w, r, "/topics", err, fmt.Sprintf("created topic %s with %d partitions", name, parts))
}

func (c *Console) alterConfig(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	back := "/topics/" + url.PathEscape(topic)
	key := strings.TrimSpace(r.FormValue("key"))
	value := strings.TrimSpace(r.FormValue("value"))
	op := kadm.SetConfig
	if value == "" {
		op = kadm.DeleteConfig // back to the default
	}
	ctx, cancel := reqCtx(r)
	defer cancel()
	res, err := c.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: op, Name: key, Value: &value}}, topic)
	if err == nil {
		for _, rr := range res {
			if rr.Err != nil {
				err = fmt.Errorf("%w: %s", rr.Err, rr.ErrMessage)
			}
		}
	}
	done(w, r, back, err, fmt.Sprintf("set %s=%s", key, value))
}

func (c *Console) deleteRecords(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	back := "/topics/" + url.PathEscape(topic)
	p, err1 := strconv.Atoi(r.FormValue("partition"))
	before, err2 := strconv.ParseInt(r.FormValue("before"), 10, 64)
	if err1 != nil || err2 != nil {
		done(w, r, back, errors.New("partition and offset must be numbers"), "")
		return
	}
	ctx, cancel := reqCtx(r)
	defer cancel()
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: int32(p), At: before, LeaderEpoch: -1})
	res, err := c.adm.DeleteRecords(ctx, offs)
	if err == nil {
		err = res.Error()
	}
	done(w, r, back, err, fmt.Sprintf("deleted records of partition %d before offset %d", p, before))
}

func (c *Console) resetOffsets(w http.ResponseWriter, r *http.Request) {
	group := r.PathValue("group")
	back := "/groups/" + url.PathEscape(group)
	topic := r.FormValue("topic")
	to := r.FormValue("to")
	ctx, cancel := reqCtx(r)
	defer cancel()
	var listed kadm.ListedOffsets
	var err error
	switch to {
	case "earliest":
		listed, err = c.adm.ListStartOffsets(ctx, topic)
	case "latest":
		listed, err = c.adm.ListEndOffsets(ctx, topic)
	default:
		var n int64
		if n, err = strconv.ParseInt(to, 10, 64); err != nil {
			done(w, r, back, fmt.Errorf("reset to %q: want earliest, latest or an offset", to), "")
			return
		}
		listed, err = c.adm.ListEndOffsets(ctx, topic)
		listed.Each(func(o kadm.ListedOffset) {
			listed[o.Topic][o.Partition] = kadm.ListedOffset{Topic: o.Topic, Partition: o.Partition, Offset: min(n, o.Offset), LeaderEpoch: -1}
		})
	}
	if err != nil {
		done(w, r, back, err, "")
		return
	}
	if err = listed.Error(); err != nil {
		done(w, r, back, err, "")
		return
	}
	// Kafka resets only inactive groups: a commit from outside the group
	// while it has members is refused by the coordinator.
	resp, err := c.adm.CommitOffsets(ctx, group, listed.Offsets())
	if err == nil {
		err = resp.Error()
	}
	done(w, r, back, err, fmt.Sprintf("reset %s of group %s to %s", topic, group, to))
}
