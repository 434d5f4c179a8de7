package broker

// AlterConfigs (key 33), versions 0-2.
//
// The legacy, non-incremental API: the configs given replace all of a
// topic's overrides. Values are checked against the topic config table
// (INVALID_CONFIG) before anything changes, and validate_only changes
// nothing. Broker resources are refused with INVALID_REQUEST: dynamic
// broker configs are not supported yet.

import (
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

// alterTopicConfigs validates and, unless validateOnly, stores a topic's
// complete new set of overrides. It is shared by both alter APIs.
func (b *Broker) alterTopicConfigs(typ kmsg.ConfigResourceType, name string, raw map[string]*string, next map[string]string, validateOnly bool) (int16, *string) {
	fail := func(code int16, msg string) (int16, *string) { return code, &msg }
	switch int8(typ) {
	case resourceTopic:
	case resourceBroker:
		return fail(kerr.InvalidRequest.Code, "Dynamic broker configs are not supported by Gregor yet; set them in server.properties.")
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
