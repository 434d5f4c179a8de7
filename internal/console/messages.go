package console

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// browseForm is the message browser's seek: a partition (or all), and a
// start by offset, by timestamp, or the newest messages.
type browseForm struct {
	Partition string // "" for all partitions
	Offset    string // start offset; "" for the newest Limit messages
	Timestamp string // RFC 3339 or unix ms; wins over Offset
	Limit     int
	Format    string // auto, text, json, hex
}

func parseBrowse(r *http.Request) browseForm {
	q := r.URL.Query()
	f := browseForm{Partition: q.Get("partition"), Offset: q.Get("offset"), Timestamp: q.Get("timestamp"), Format: q.Get("format")}
	f.Limit, _ = strconv.Atoi(q.Get("limit"))
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 20
	}
	switch f.Format {
	case "auto", "text", "json", "hex":
	default:
		f.Format = "auto"
	}
	return f
}

type shownBytes struct {
	Null   bool
	Text   string
	Kind   string // utf-8, json, hex
	Length int
}

type headerRow struct {
	Key   string
	Value shownBytes
}

type messageRow struct {
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       shownBytes
	Value     shownBytes
	Headers   []headerRow
}

type messagesData struct {
	Topic    string
	Form     browseForm
	Messages []messageRow
	Err      string
}

// show renders bytes as the format asks: auto picks JSON (pretty-printed)
// if they parse, UTF-8 text if valid, else hex.
func show(b []byte, format string) shownBytes {
	if b == nil {
		return shownBytes{Null: true}
	}
	s := shownBytes{Length: len(b)}
	if format == "auto" || format == "json" {
		var buf bytes.Buffer
		if len(b) > 0 && (b[0] == '{' || b[0] == '[') && json.Indent(&buf, b, "", "  ") == nil {
			s.Text, s.Kind = buf.String(), "json"
			return s
		}
	}
	if format != "hex" && utf8.Valid(b) {
		s.Text, s.Kind = string(b), "utf-8"
		return s
	}
	s.Text, s.Kind = hex.Dump(b), "hex"
	return s
}

// browse reads up to Limit messages of a topic from where the form says.
func (c *Console) browse(ctx context.Context, topic string, f browseForm) ([]messageRow, error) {
	topics, err := c.adm.ListTopicsWithInternal(ctx, topic)
	if err != nil {
		return nil, err
	}
	td, ok := topics[topic]
	if !ok || td.Err != nil {
		return nil, fmt.Errorf("topic %q not found", topic)
	}
	parts := td.Partitions.Numbers()
	if f.Partition != "" {
		p, err := strconv.Atoi(f.Partition)
		if err != nil {
			return nil, fmt.Errorf("partition %q is not a number", f.Partition)
		}
		if _, ok := td.Partitions[int32(p)]; !ok {
			return nil, fmt.Errorf("topic %q has no partition %d", topic, p)
		}
		parts = []int32{int32(p)}
	}
	starts, err := c.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	ends, err := c.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	var byTime kadm.ListedOffsets
	if f.Timestamp != "" {
		ms, err := parseTimestamp(f.Timestamp)
		if err != nil {
			return nil, err
		}
		if byTime, err = c.adm.ListOffsetsAfterMilli(ctx, ms, topic); err != nil {
			return nil, err
		}
	}
	from := map[int32]kgo.Offset{}
	want := map[int32]int64{} // partition → end offset to read to
	for _, p := range parts {
		start, _ := starts.Lookup(topic, p)
		end, _ := ends.Lookup(topic, p)
		var at int64
		switch {
		case f.Timestamp != "":
			o, _ := byTime.Lookup(topic, p)
			at = o.Offset
		case f.Offset != "":
			n, err := strconv.ParseInt(f.Offset, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("offset %q is not a number", f.Offset)
			}
			at = n
		default:
			at = end.Offset - int64(f.Limit) // the newest
		}
		at = max(at, start.Offset)
		if at >= end.Offset || at < 0 {
			continue
		}
		from[p] = kgo.NewOffset().At(at)
		want[p] = min(end.Offset, at+int64(f.Limit))
	}
	if len(from) == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.opts.Brokers...), kgo.ClientID("gregor-console-browser"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var rows []messageRow
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for len(want) > 0 && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(rec *kgo.Record) {
			end, ok := want[rec.Partition]
			if !ok || rec.Offset >= end {
				return
			}
			row := messageRow{Partition: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp.UTC(),
				Key: show(rec.Key, f.Format), Value: show(rec.Value, f.Format)}
			for _, h := range rec.Headers {
				row.Headers = append(row.Headers, headerRow{Key: h.Key, Value: show(h.Value, f.Format)})
			}
			rows = append(rows, row)
			if rec.Offset+1 >= end {
				delete(want, rec.Partition)
			}
		})
	}
	// With all partitions, show the Limit messages nearest the seek point
	// (the newest when no point is given), in time order.
	sort.SliceStable(rows, func(i, j int) bool {
		if !rows[i].Timestamp.Equal(rows[j].Timestamp) {
			return rows[i].Timestamp.Before(rows[j].Timestamp)
		}
		if rows[i].Partition != rows[j].Partition {
			return rows[i].Partition < rows[j].Partition
		}
		return rows[i].Offset < rows[j].Offset
	})
	if len(rows) > f.Limit {
		if f.Offset == "" && f.Timestamp == "" {
			rows = rows[len(rows)-f.Limit:]
		} else {
			rows = rows[:f.Limit]
		}
	}
	return rows, nil
}

func parseTimestamp(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, fmt.Errorf("timestamp %q: want RFC 3339 (2006-01-02T15:04:05Z) or unix milliseconds", s)
}

func (c *Console) messages(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	f := parseBrowse(r)
	ctx, cancel := reqCtx(r)
	defer cancel()
	d := messagesData{Topic: topic, Form: f}
	rows, err := c.browse(ctx, topic, f)
	if err != nil {
		d.Err = err.Error()
	}
	d.Messages = rows
	c.render(w, r, "messages", "Messages of "+topic, "topics", d)
}
