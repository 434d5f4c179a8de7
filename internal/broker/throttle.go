package broker

// Replication throttles (KIP-73), as kafka-reassign-partitions.sh
// --throttle sets them: leader.replication.throttled.rate and
// follower.replication.throttled.rate (per broker, bytes per second) apply
// to the replicas the topics' leader.replication.throttled.replicas and
// follower.replication.throttled.replicas name ("partition:broker" pairs
// naming this broker, or "*"). As in Kafka, a throttled partition is left
// out of a replica fetch while the broker is over its rate (the leader
// answers it with no records; the follower does not ask for it), and the
// bytes that do move count against the rate. Other partitions are never
// held back.

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gregorhq/gregor/internal/metadata"
)

// quota measures bytes per second over a sliding one-second window.
type quota struct {
	mu    sync.Mutex
	start time.Time // start of the current window
	cur   int64     // bytes in the current window
	prev  int64     // bytes in the previous window
}

func (q *quota) roll(now time.Time) {
	switch d := now.Sub(q.start); {
	case d >= 2*time.Second:
		q.start, q.cur, q.prev = now, 0, 0
	case d >= time.Second:
		q.start, q.prev, q.cur = q.start.Add(time.Second), q.cur, 0
	}
}

// rate estimates the bytes of the last second.
func (q *quota) rate(now time.Time) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.roll(now)
	frac := float64(now.Sub(q.start)) / float64(time.Second)
	return q.cur + int64(float64(q.prev)*(1-frac))
}

func (q *quota) record(n int64, now time.Time) {
	q.mu.Lock()
	q.roll(now)
	q.cur += n
	q.mu.Unlock()
}

// throttleRate is a replication throttle rate property of this broker
// (bytes per second; math.MaxInt64 when unset).
func (b *Broker) throttleRate(name string) int64 {
	v, _, ok := b.brokerProp(name)
	if !ok {
		return 1<<63 - 1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 1<<63 - 1
	}
	return n
}

// throttledHere reports whether the topic config list (leader. or
// follower.replication.throttled.replicas) names partition p on this
// broker.
func (b *Broker) throttledHere(topic, config string, p int32) bool {
	v := b.meta.Image().Configs(metadata.ResourceTopic, topic)[config]
	v = strings.TrimSpace(v)
	if v == "" {
		return false
	}
	if v == "*" {
		return true
	}
	me := strconv.Itoa(int(b.cfg.NodeID))
	ps := strconv.Itoa(int(p))
	for _, item := range strings.Split(v, ",") {
		part, broker, ok := strings.Cut(strings.TrimSpace(item), ":")
		if ok && strings.TrimSpace(part) == ps && strings.TrimSpace(broker) == me {
			return true
		}
	}
	return false
}

// leaderThrottled reports whether a follower's fetch of partition p of
// topic must skip it now: throttled here and over the leader rate.
func (b *Broker) leaderThrottled(topic string, p int32) (throttled, over bool) {
	if !b.throttledHere(topic, "leader.replication.throttled.replicas", p) {
		return false, false
	}
	return true, b.replicas.leaderQuota.rate(time.Now()) > b.throttleRate("leader.replication.throttled.rate")
}

// followerThrottled is leaderThrottled for this broker's own fetches.
func (b *Broker) followerThrottled(topic string, p int32) (throttled, over bool) {
	if !b.throttledHere(topic, "follower.replication.throttled.replicas", p) {
		return false, false
	}
	return true, b.replicas.followerQuota.rate(time.Now()) > b.throttleRate("follower.replication.throttled.rate")
}
