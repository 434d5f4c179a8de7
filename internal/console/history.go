package console

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/gregorhq/gregor/internal/guard"
)

// sample is one observation of the cluster by the sampler.
type sample struct {
	at        time.Time
	endOffset map[string]int64 // topic → sum of its partitions' end offsets
	lag       map[string]int64 // group → total lag
}

// history is a ring of the last samples (one hour's worth). mu guards it;
// it is a leaf lock held only to copy in or out.
type history struct {
	mu      sync.Mutex
	samples []sample
	next    int
	full    bool
}

func newHistory(n int) *history { return &history{samples: make([]sample, max(n, 2))} }

func (h *history) add(s sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.samples[h.next] = s
	h.next = (h.next + 1) % len(h.samples)
	if h.next == 0 {
		h.full = true
	}
}

// ordered returns the samples oldest first.
func (h *history) ordered() []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.full {
		return append([]sample(nil), h.samples[:h.next]...)
	}
	return append(append([]sample(nil), h.samples[h.next:]...), h.samples[:h.next]...)
}

// rates are messages per second between consecutive samples: for one
// topic, or all topics when topic is "".
func (h *history) rates(topic string) (ts, vs []float64) {
	ss := h.ordered()
	for i := 1; i < len(ss); i++ {
		a, b := ss[i-1], ss[i]
		dt := b.at.Sub(a.at).Seconds()
		if dt <= 0 {
			continue
		}
		var d int64
		if topic == "" {
			for t, end := range b.endOffset {
				if prev, ok := a.endOffset[t]; ok && end >= prev {
					d += end - prev
				}
			}
		} else {
			prev, ok1 := a.endOffset[topic]
			end, ok2 := b.endOffset[topic]
			if !ok1 || !ok2 || end < prev {
				continue
			}
			d = end - prev
		}
		ts = append(ts, unixSeconds(b.at))
		vs = append(vs, float64(d)/dt)
	}
	return ts, vs
}

// latestRate is the most recent messages-per-second of a topic, or 0.
func (h *history) latestRate(topic string) float64 {
	_, vs := h.rates(topic)
	if len(vs) == 0 {
		return 0
	}
	return vs[len(vs)-1]
}

// lag is a group's total lag over time.
func (h *history) lag(group string) (ts, vs []float64) {
	for _, s := range h.ordered() {
		if v, ok := s.lag[group]; ok {
			ts = append(ts, unixSeconds(s.at))
			vs = append(vs, float64(v))
		}
	}
	return ts, vs
}

// sampleLoop samples at once and then every SampleInterval until Close.
func (c *Console) sampleLoop() {
	defer close(c.done)
	t := time.NewTicker(c.opts.SampleInterval)
	defer t.Stop()
	for {
		// A bug in a sample costs that sample, not the broker process
		// the console runs in.
		func() {
			defer guard.Recover(c.log, "console sampler", nil)
			c.sampleOnce()
		}()
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
	}
}

func (c *Console) sampleOnce() {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.SampleInterval+5*time.Second)
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	s := sample{at: time.Now(), endOffset: map[string]int64{}, lag: map[string]int64{}}
	ends, err := c.adm.ListEndOffsets(ctx)
	if err != nil {
		c.log.Debug("console: sample end offsets", "err", err)
		return
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			s.endOffset[o.Topic] += o.Offset
		}
	})
	groups, err := c.adm.ListGroups(ctx)
	if err == nil && len(groups) > 0 {
		lags, err := c.adm.Lag(ctx, groups.Groups()...)
		if err == nil {
			for g, l := range lags {
				if l.Error() == nil {
					s.lag[g] = l.Lag.Total()
				}
			}
		}
	}
	c.hist.add(s)
}

// series is what the charts (static/console.js) plot: unix seconds and
// one or more value columns.
type series struct {
	T      []float64   `json:"t"` // unix seconds, with milliseconds
	Series []seriesCol `json:"series"`
}

type seriesCol struct {
	Name   string    `json:"name"`
	Values []float64 `json:"values"`
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

func (c *Console) throughputJSON(w http.ResponseWriter, _ *http.Request) {
	ts, vs := c.hist.rates("")
	writeJSON(w, series{T: nonNilF(ts), Series: []seriesCol{{Name: "messages in /s", Values: nonNilF(vs)}}})
}

func (c *Console) topicRateJSON(w http.ResponseWriter, r *http.Request) {
	ts, vs := c.hist.rates(r.PathValue("topic"))
	writeJSON(w, series{T: nonNilF(ts), Series: []seriesCol{{Name: "messages in /s", Values: nonNilF(vs)}}})
}

func (c *Console) groupLagJSON(w http.ResponseWriter, r *http.Request) {
	ts, vs := c.hist.lag(r.PathValue("group"))
	writeJSON(w, series{T: nonNilF(ts), Series: []seriesCol{{Name: "lag (messages)", Values: nonNilF(vs)}}})
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func nonNilF(s []float64) []float64 {
	if s == nil {
		return []float64{}
	}
	return s
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
