package broker

// AlterConfigs (key 33), versions 0-2.
//
// The legacy, non-incremental API: the configs given replace all of a
// topic's overrides. Values are checked against the topic config table
// (INVALID_CONFIG) before anything changes, and validate_only changes
// nothing. Broker resources ("" for cluster defaults, or a registered
// broker's id) take the log defaults topics fall back on
// (dynamic_configs.go); other broker properties are static and get
// INVALID_CONFIG. The change is committed to the metadata log by the
// active controller (a broker forwards it there) and answered once the
// brokers have published it.

import (
	"context"
	"errors"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/controller"
	"github.com/gregorhq/gregor/internal/metadata"
)

func init() {
	registerAdmin(33, 0, 2, alterConfigs, func(_ *Broker, req *kmsg.AlterConfigsRequest, code int16) *kmsg.AlterConfigsResponse {
		resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
		for _, rr := range req.Resources {
			sr := kmsg.NewAlterConfigsResponseResource()
			sr.ResourceType, sr.ResourceName, sr.ErrorCode = rr.ResourceType, rr.ResourceName, code
			resp.Resources = append(resp.Resources, sr)
		}
		return resp
	}, func(c *conn, _ *kmsg.AlterConfigsRequest, _ *kmsg.AlterConfigsResponse) { c.b.waitMetaPublished(c.ctx) })
}

// alterConfigs runs AlterConfigs where this node is the active controller.
func alterConfigs(ctx context.Context, b *Broker, v int16, req *kmsg.AlterConfigsRequest) *kmsg.AlterConfigsResponse {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		next := map[string]string{}
		raw := map[string]*string{}
		for _, cfg := range rr.Configs {
			raw[cfg.Name] = cfg.Value
			if cfg.Value != nil {
				next[cfg.Name] = *cfg.Value
			}
		}
		sr.ErrorCode, sr.ErrorMessage = b.alterTopicConfigs(ctx, rr.ResourceType, rr.ResourceName, raw, next, req.ValidateOnly)
		resp.Resources = append(resp.Resources, sr)
	}
	b.awaitBrokers(ctx)
	return resp
}

// alterTopicConfigs validates and, unless validateOnly, stores the complete
// new set of overrides of a topic or broker resource. It is shared by both
// alter APIs.
func (b *Broker) alterTopicConfigs(ctx context.Context, typ kmsg.ConfigResourceType, name string, raw map[string]*string, next map[string]string, validateOnly bool) (int16, *string) {
	fail := func(code int16, msg string) (int16, *string) { return code, &msg }
	switch int8(typ) {
	case resourceTopic:
	case resourceBroker:
		if !b.isAlterableBroker(name) {
			return fail(kerr.InvalidRequest.Code, "Unexpected broker id, expected "+strconv.Itoa(int(b.cfg.NodeID))+" or empty string, but received "+name)
		}
		if err := b.alterBrokerConfigs(ctx, name, next, validateOnly); err != nil {
			var ce *controller.Error
			if errors.As(err, &ce) {
				return fail(ctlErr(err))
			}
			return fail(kerr.InvalidConfig.Code, err.Error())
		}
		return 0, nil
	default:
		return fail(kerr.InvalidRequest.Code, "Unsupported resource type")
	}
	if b.meta.Image().Topic(name) == nil {
		return fail(kerr.UnknownTopicOrPartition.Code, "Topic "+name+" does not exist.")
	}
	if err := validateTopicConfigs(raw); err != nil {
		return fail(kerr.InvalidConfig.Code, err.Error())
	}
	if err := b.checkCompactionLags(raw); err != nil {
		return fail(kerr.InvalidConfig.Code, err.Error())
	}
	cur := b.meta.Image().Configs(metadata.ResourceTopic, name)
	if err := b.ctl.AlterConfigs(ctx, metadata.ResourceTopic, name, configOps(cur, next), validateOnly); err != nil {
		return fail(ctlErr(err))
	}
	if validateOnly {
		return 0, nil
	}
	b.log.Info("altered topic configs", "topic", name, "configs", next)
	return 0, nil
}
