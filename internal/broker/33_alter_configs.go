package broker

// AlterConfigs (key 33), versions 0-2.
//
// The legacy, non-incremental API: the configs given replace all of a
// topic's overrides. Values are checked against the topic config table
// (INVALID_CONFIG) before anything changes, and validate_only changes
// nothing. Broker resources ("" for cluster defaults, or this node's id)
// take the log defaults topics fall back on (dynamic_configs.go); other
// broker properties are static and get INVALID_CONFIG.

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(33, 0, 2, handleAlterConfigs)
}

func handleAlterConfigs(c *conn, v int16, req *kmsg.AlterConfigsRequest) *kmsg.AlterConfigsResponse {
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
		sr.ErrorCode, sr.ErrorMessage = c.b.alterTopicConfigs(rr.ResourceType, rr.ResourceName, raw, next, req.ValidateOnly)
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

// alterTopicConfigs validates and, unless validateOnly, stores the complete
// new set of overrides of a topic or broker resource. It is shared by both
// alter APIs.
func (b *Broker) alterTopicConfigs(typ kmsg.ConfigResourceType, name string, raw map[string]*string, next map[string]string, validateOnly bool) (int16, *string) {
	fail := func(code int16, msg string) (int16, *string) { return code, &msg }
	switch int8(typ) {
	case resourceTopic:
	case resourceBroker:
		if !b.isBrokerResource(name) {
			return fail(kerr.InvalidRequest.Code, "Unexpected broker id, expected "+strconv.Itoa(int(b.cfg.NodeID))+" or empty string, but received "+name)
		}
		if err := b.alterBrokerConfigs(name, next, validateOnly); err != nil {
			return fail(kerr.InvalidConfig.Code, err.Error())
		}
		return 0, nil
	default:
		return fail(kerr.InvalidRequest.Code, "Unsupported resource type")
	}
	if b.catalog.get(name) == nil {
		return fail(kerr.UnknownTopicOrPartition.Code, "Topic "+name+" does not exist.")
	}
	if err := validateTopicConfigs(raw); err != nil {
		return fail(kerr.InvalidConfig.Code, err.Error())
	}
	if validateOnly {
		return 0, nil
	}
	if err := b.catalog.setConfigs(name, next); err != nil {
		b.log.Error("alter topic configs failed", "topic", name, "err", err)
		return fail(kerr.KafkaStorageError.Code, err.Error())
	}
	b.log.Info("altered topic configs", "topic", name, "configs", next)
	return 0, nil
}
