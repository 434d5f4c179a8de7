package broker

// ListGroups (key 16), versions 0-5.
//
// Lists every live group with its protocol type; v4+ adds the state and
// honours states_filter (case-insensitive), v5+ reports type "classic" and
// honours types_filter. Only groups this broker coordinates are listed;
// while some of its __consumer_offsets partitions are loading the answer
// also carries COORDINATOR_LOAD_IN_PROGRESS, as Kafka's does.

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(16, 0, 5, func(c *conn, v int16, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
		resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
		match := func(filter []string, s string) bool {
			if len(filter) == 0 {
				return true
			}
			for _, f := range filter {
				if strings.EqualFold(f, s) {
					return true
				}
			}
			return false
		}
		if len(c.b.groups.Loading()) > 0 {
			resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		}
		for _, s := range c.b.groups.List() {
			if !match(req.StatesFilter, s.State) || !match(req.TypesFilter, "classic") {
				continue
			}
			lg := kmsg.NewListGroupsResponseGroup()
			lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = s.ID, s.ProtocolType, s.State, "classic"
			resp.Groups = append(resp.Groups, lg)
		}
		return resp
	})
}
