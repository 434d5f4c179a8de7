package controller

import (
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorhq/gregor/internal/metadata"
)

// place assigns replicas to partitions first..first+n-1 over the usable
// brokers (unfenced, not shutting down), the way Kafka's default placement
// does in spirit:
//
//   - brokers are ordered so that racks alternate (one from each rack in
//     turn), so consecutive brokers sit in different racks;
//   - partition p's first replica, its preferred leader, is broker
//     (start + p) mod n of that order, so leaders spread evenly;
//   - followers come after it at a shift that changes every n partitions,
//     so followers of one leader spread over the others too; a follower
//     skips brokers already chosen and, while some rack holds no replica
//     of the partition yet, brokers in racks that already do.
//
// start and the shift are random, as in Kafka, so that topics created one
// after another do not all put their first leader on the same broker.
func place(im *metadata.Image, first, n int32, rf int16) ([][]int32, *Error) {
	brokers := usable(im)
	if int(rf) > len(brokers) {
		return nil, refuse(kerr.InvalidReplicationFactor,
			"Unable to replicate the partition %d time(s): The target replication factor of %d cannot be reached because only %d broker(s) are registered.",
			rf, rf, len(brokers))
	}
	nb := len(brokers)
	start := rand.IntN(nb)
	shift := rand.IntN(nb)
	racks := map[string]bool{}
	for _, b := range brokers {
		racks[b.Rack] = true
	}
	out := make([][]int32, 0, n)
	for i := int32(0); i < n; i++ {
		p := int(first + i)
		if p > 0 && p%nb == 0 {
			shift++
		}
		lead := (p + start) % nb
		replicas := []int32{brokers[lead].ID}
		usedRack := map[string]bool{brokers[lead].Rack: true}
		for j := 0; len(replicas) < int(rf); j++ {
			pos := (lead + 1 + (shift+j)%max(nb-1, 1)) % nb
			// Walk on from pos to the first broker that fits.
			pick := -1
			for k := 0; k < nb && pick < 0; k++ {
				cand := brokers[(pos+k)%nb]
				if slices.Contains(replicas, cand.ID) {
					continue
				}
				if len(usedRack) < len(racks) && usedRack[cand.Rack] {
					continue
				}
				pick = (pos + k) % nb
			}
			if pick < 0 { // every rack used: any broker not yet chosen
				for k := 0; k < nb && pick < 0; k++ {
					if !slices.Contains(replicas, brokers[(pos+k)%nb].ID) {
						pick = (pos + k) % nb
					}
				}
			}
			replicas = append(replicas, brokers[pick].ID)
			usedRack[brokers[pick].Rack] = true
		}
		out = append(out, replicas)
	}
	return out, nil
}

// usable returns the brokers that can take new replicas, with racks
// alternating: sorted by rack, then by id within a rack, then dealt one
// rack at a time.
func usable(im *metadata.Image) []*metadata.Broker {
	byRack := map[string][]*metadata.Broker{}
	var racks []string
	for _, b := range im.Brokers() { // sorted by id
		if b.Fenced || b.InControlledShutdown {
			continue
		}
		if byRack[b.Rack] == nil {
			racks = append(racks, b.Rack)
		}
		byRack[b.Rack] = append(byRack[b.Rack], b)
	}
	sort.Strings(racks)
	var out []*metadata.Broker
	for i := 0; ; i++ {
		added := false
		for _, r := range racks {
			if i < len(byRack[r]) {
				out = append(out, byRack[r][i])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}
