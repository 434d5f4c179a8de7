package broker

// DeleteGroups (key 42), versions 0-2.
//
// Only an empty group can be deleted (NON_EMPTY_GROUP otherwise); its
// offsets and metadata get tombstones in __consumer_offsets. An unknown group
// is GROUP_ID_NOT_FOUND.

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/group"
)

func init() {
	register(42, 0, 2, func(c *conn, v int16, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
		resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
		for _, id := range req.Groups {
			dg := kmsg.NewDeleteGroupsResponseGroup()
			dg.Group = id
			err := c.b.groups.DeleteGroup(id)
			var ke *kerr.Error
			switch {
			case err == nil:
			case errors.As(err, &ke): // NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS
				dg.ErrorCode = ke.Code
			case errors.Is(err, group.ErrGroupNotFound):
				dg.ErrorCode = kerr.GroupIDNotFound.Code
			case errors.Is(err, group.ErrNotEmpty):
				dg.ErrorCode = kerr.NonEmptyGroup.Code
			default:
				c.log.Error("delete group failed", "group", id, "err", err)
				dg.ErrorCode = kerr.CoordinatorNotAvailable.Code
			}
			resp.Groups = append(resp.Groups, dg)
		}
		return resp
	})
}
