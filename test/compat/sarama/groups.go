package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// member is one ConsumerGroup instance: what its latest session was given
// and every record it consumed. Every record is marked; whenever a claim has
// caught up with the high watermark the marks are committed synchronously
// before the record is counted, so once every record is counted every
// partition's last offset is committed. (Not a commit per record: sarama
// holds its broker connection for the whole of a Fetch long poll, 500 ms
// when nothing new is there, so per-record commits crawl.)
type member struct {
	name  string
	topic string

	mu       sync.Mutex
	gen      int32
	memberID string
	claims   []int32
	setups   int
	seen     []*sarama.ConsumerMessage
	errs     []error
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen, m.memberID = s.GenerationID(), s.MemberID()
	m.claims = slices.Clone(s.Claims()[m.topic])
	slices.Sort(m.claims)
	m.setups++
	return nil
}

func (m *member) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-c.Messages():
			if !ok {
				return nil
			}
			s.MarkMessage(msg, "")
			if msg.Offset+1 >= c.HighWaterMarkOffset() {
				s.Commit()
			}
			m.mu.Lock()
			m.seen = append(m.seen, msg)
			m.mu.Unlock()
		case <-s.Context().Done():
			return nil
		}
	}
}

func (m *member) state() (gen int32, id string, claims []int32, seen int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen, m.memberID, m.claims, len(m.seen)
}

// running is a member consuming in the background until stop.
type running struct {
	*member
	cg     sarama.ConsumerGroup
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *profile) startMember(group, topic, name string, cfg *sarama.Config) *running {
	cg, err := sarama.NewConsumerGroup([]string{p.s.bootstrap}, group, cfg)
	must(err, "NewConsumerGroup "+name)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{member: &member{name: name, topic: topic}, cg: cg, cancel: cancel, done: make(chan struct{})}
	go func() {
		for err := range cg.Errors() {
			r.mu.Lock()
			r.errs = append(r.errs, err)
			r.mu.Unlock()
		}
	}()
	go func() {
		defer close(r.done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, r.member); err != nil && ctx.Err() == nil {
				r.mu.Lock()
				r.errs = append(r.errs, err)
				r.mu.Unlock()
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	return r
}

func (r *running) stop() {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
	}
	_ = r.cg.Close()
}

func (r *running) errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

func (p *profile) groupConfig() *sarama.Config {
	cfg := p.config()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	if p.version != nil {
		// The modern pass uses the sticky assignor, the default pass range.
		cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	}
	return cfg
}

func (p *profile) groupChecks() {
	t := p.topic("group")
	group := p.topic("group-g")
	const perPartition = 30
	ok := false

	p.check("group_two_members_split_partitions", func() {
		p.createTopic(t, 3)
		cfg := p.groupConfig()
		a := p.startMember(group, t, "a", cfg)
		b := p.startMember(group, t, "b", p.groupConfig())
		defer b.stop()
		defer a.stop()

		// Wait for one generation in which the two members split {0,1,2}.
		deadline := time.Now().Add(20 * time.Second)
		for {
			ga, _, ca, _ := a.state()
			gb, _, cb, _ := b.state()
			all := slices.Concat(ca, cb)
			slices.Sort(all)
			if ga > 0 && ga == gb && len(ca) > 0 && len(cb) > 0 && slices.Equal(all, []int32{0, 1, 2}) {
				break
			}
			if time.Now().After(deadline) {
				failf("no generation splitting partitions 0-2 between both members after 20s: a gen %d claims %v, b gen %d claims %v; errors a=%v b=%v",
					ga, ca, gb, cb, a.errors(), b.errors())
			}
			time.Sleep(100 * time.Millisecond)
		}

		// Produce only now, so every record goes to a settled assignment.
		client := p.client(nil)
		defer client.Close()
		prod, err := sarama.NewSyncProducerFromClient(client)
		must(err, "NewSyncProducer")
		defer prod.Close()
		var msgs []*sarama.ProducerMessage
		for i := 0; i < perPartition; i++ {
			for part := int32(0); part < 3; part++ {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: t, Partition: part,
					Key: sarama.StringEncoder(fmt.Sprintf("g-%d-%02d", part, i)), Value: sarama.StringEncoder(fmt.Sprintf("group value %d/%d", part, i))})
			}
		}
		must(prod.SendMessages(msgs), "SendMessages")

		deadline = time.Now().Add(20 * time.Second)
		for {
			_, _, _, na := a.state()
			_, _, _, nb := b.state()
			if na+nb >= 3*perPartition {
				break
			}
			if time.Now().After(deadline) {
				failf("consumed %d+%d of %d records after 20s; errors a=%v b=%v", na, nb, 3*perPartition, a.errors(), b.errors())
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // room for a duplicate to show up

		type po struct {
			p int32
			o int64
		}
		seen := map[po]string{}
		for _, m := range []*running{a, b} {
			gen, id, claims, _ := m.state()
			expect(gen > 0 && id != "", "member %s: generation %d id %q", m.name, gen, id)
			m.mu.Lock()
			recs := slices.Clone(m.seen)
			setups := m.setups
			m.mu.Unlock()
			expect(setups == 1, "member %s: %d sessions, want 1 (an unexpected rebalance)", m.name, setups)
			for _, r := range recs {
				expect(slices.Contains(claims, r.Partition), "member %s consumed partition %d outside its claims %v", m.name, r.Partition, claims)
				k := po{r.Partition, r.Offset}
				if prev, dup := seen[k]; dup {
					failf("partition %d offset %d consumed twice (by %s and %s)", r.Partition, r.Offset, prev, m.name)
				}
				seen[k] = m.name
				want := fmt.Sprintf("g-%d-%02d|group value %d/%d", r.Partition, r.Offset, r.Partition, r.Offset)
				expect(string(r.Key)+"|"+string(r.Value) == want, "partition %d offset %d: got %q|%q, want %q",
					r.Partition, r.Offset, r.Key, r.Value, want)
			}
		}
		expect(len(seen) == 3*perPartition, "%d distinct records consumed, want %d", len(seen), 3*perPartition)

		// The group as the broker describes it while both members are in.
		adm := p.admin()
		defer adm.Close()
		descs, err := adm.DescribeConsumerGroups([]string{group})
		must(err, "DescribeConsumerGroups")
		expect(len(descs) == 1, "DescribeConsumerGroups: %d groups", len(descs))
		d := descs[0]
		wantProto := "range"
		if p.version != nil {
			wantProto = "sticky"
		}
		expect(errors.Is(d.Err, sarama.ErrNoError) && d.State == "Stable" && d.ProtocolType == "consumer" && d.Protocol == wantProto,
			"group: err %v state %q protocol type %q protocol %q, want Stable consumer %s", d.Err, d.State, d.ProtocolType, d.Protocol, wantProto)
		expect(len(d.Members) == 2, "group has %d members, want 2", len(d.Members))
		for _, m := range []*running{a, b} {
			_, id, claims, _ := m.state()
			md, ok := d.Members[id]
			expect(ok, "member %s (%s) not in DescribeConsumerGroups", m.name, id)
			asg, err := md.GetMemberAssignment()
			must(err, "GetMemberAssignment")
			expect(asg != nil && slices.Equal(sortedCopy(asg.Topics[t]), claims),
				"member %s: broker-side assignment %v, session claims %v", m.name, asg, claims)
		}

		// Committed offsets are the end offsets.
		checkCommitted(p, adm, client, group, t, perPartition)
		ok = true
	})

	p.check("group_committed_offsets_admin_after_leave", func() {
		expect(ok, "needs group_two_members_split_partitions")
		adm := p.admin()
		defer adm.Close()
		client := p.client(nil)
		defer client.Close()
		checkCommitted(p, adm, client, group, t, perPartition)
		descs, err := adm.DescribeConsumerGroups([]string{group})
		must(err, "DescribeConsumerGroups")
		expect(len(descs) == 1 && descs[0].State == "Empty" && len(descs[0].Members) == 0,
			"group after both members closed: state %q, %d members; want Empty, 0", descs[0].State, len(descs[0].Members))
		groups, err := adm.ListConsumerGroups()
		must(err, "ListConsumerGroups")
		expect(groups[group] == "consumer", "ListConsumerGroups[%s] = %q, want consumer", group, groups[group])
	})

	p.check("group_new_member_resumes_from_committed", func() {
		expect(ok, "needs group_two_members_split_partitions")
		c := p.startMember(group, t, "c", p.groupConfig())
		defer c.stop()
		deadline := time.Now().Add(20 * time.Second)
		for {
			gen, _, claims, _ := c.state()
			if gen > 0 && slices.Equal(claims, []int32{0, 1, 2}) {
				break
			}
			expect(time.Now().Before(deadline), "member c has claims %v after 20s; errors %v", claims, c.errors())
			time.Sleep(100 * time.Millisecond)
		}
		client := p.client(nil)
		defer client.Close()
		prod, err := sarama.NewSyncProducerFromClient(client)
		must(err, "NewSyncProducer")
		defer prod.Close()
		for part := int32(0); part < 3; part++ {
			_, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: t, Partition: part, Value: sarama.StringEncoder(fmt.Sprintf("after %d", part))})
			must(err, "SendMessage")
		}
		deadline = time.Now().Add(15 * time.Second)
		for {
			_, _, _, n := c.state()
			if n >= 3 {
				break
			}
			expect(time.Now().Before(deadline), "member c consumed %d of 3 new records after 15s", n)
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		c.mu.Lock()
		recs := slices.Clone(c.seen)
		c.mu.Unlock()
		expect(len(recs) == 3, "member c consumed %d records, want only the 3 new ones", len(recs))
		for _, r := range recs {
			expect(r.Offset == perPartition && string(r.Value) == fmt.Sprintf("after %d", r.Partition),
				"member c: partition %d offset %d value %q, want offset %d", r.Partition, r.Offset, r.Value, perPartition)
		}
		adm := p.admin()
		defer adm.Close()
		checkCommitted(p, adm, client, group, t, perPartition+1)
	})
}

// checkCommitted: ListConsumerGroupOffsets for the group's three partitions
// equals each partition's end offset, which must be want.
func checkCommitted(p *profile, adm sarama.ClusterAdmin, client sarama.Client, group, topic string, want int64) {
	resp, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2}})
	must(err, "ListConsumerGroupOffsets")
	expect(errors.Is(resp.Err, sarama.ErrNoError), "ListConsumerGroupOffsets error %v", resp.Err)
	for part := int32(0); part < 3; part++ {
		end, err := client.GetOffset(topic, part, sarama.OffsetNewest)
		must(err, "GetOffset newest")
		expect(end == want, "partition %d end offset %d, want %d", part, end, want)
		blk := resp.GetBlock(topic, part)
		expect(blk != nil, "no committed offset block for partition %d", part)
		expect(errors.Is(blk.Err, sarama.ErrNoError), "partition %d committed offset error %v", part, blk.Err)
		expect(blk.Offset == end, "partition %d committed offset %d, end offset %d", part, blk.Offset, end)
	}
}

func sortedCopy(s []int32) []int32 {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
