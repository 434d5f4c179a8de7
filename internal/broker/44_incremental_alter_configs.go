package broker

// IncrementalAlterConfigs (key 44), versions 0-1.
//
// SET and DELETE change one topic override each; APPEND and SUBTRACT work
// on list configs (cleanup.policy) and are INVALID_CONFIG on others, as in
// Kafka. The result is validated as a whole, then committed to the
// metadata log by the active controller (a broker forwards it there).

import (
	"context"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	registerAdmin(44, 0, 1, incrementalAlterConfigs, func(_ *Broker, req *kmsg.IncrementalAlterConfigsRequest, code int16) *kmsg.IncrementalAlterConfigsResponse {
		resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
		for _, rr := range req.Resources {
			sr := kmsg.NewIncrementalAlterConfigsResponseResource()
			sr.ResourceType, sr.ResourceName, sr.ErrorCode = rr.ResourceType, rr.ResourceName, code
			resp.Resources = append(resp.Resources, sr)
		}
		return resp
	}, func(c *conn, _ *kmsg.IncrementalAlterConfigsRequest, _ *kmsg.IncrementalAlterConfigsResponse) {
		c.b.waitMetaPublished(c.ctx)
	})
}

// incrementalAlterConfigs runs IncrementalAlterConfigs where this node is
// the active controller.
func incrementalAlterConfigs(ctx context.Context, b *Broker, v int16, req *kmsg.IncrementalAlterConfigsRequest) *kmsg.IncrementalAlterConfigsResponse {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		next := map[string]string{}
		defs := topicConfigByName
		switch int8(rr.ResourceType) {
		case resourceTopic:
			for k, val := range b.meta.Image().Configs(resourceTopic, rr.ResourceName) {
				next[k] = val
			}
		case resourceBroker:
			next = b.dynamicFor(rr.ResourceName)
			defs = dynamicBrokerConfigs
		}
		var opErr error
		for _, cfg := range rr.Configs {
			def := defs[cfg.Name]
			val := ""
			if cfg.Value != nil {
				val = *cfg.Value
			}
			switch cfg.Op {
			case kmsg.IncrementalAlterConfigOpSet:
				next[cfg.Name] = val
			case kmsg.IncrementalAlterConfigOpDelete:
				delete(next, cfg.Name)
			case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
				if def == nil || def.typ != kmsg.ConfigTypeList {
					opErr = fmt.Errorf("config %s is not a list; APPEND and SUBTRACT apply to list configs only", cfg.Name)
					break
				}
				cur, ok := next[cfg.Name]
				if !ok {
					if int8(rr.ResourceType) == resourceBroker {
						cur, _, _ = b.brokerProp(cfg.Name)
					} else {
						cur = b.resolveTopicConfig(def, nil).value
					}
				}
				next[cfg.Name] = editList(cur, val, cfg.Op == kmsg.IncrementalAlterConfigOpAppend)
			default:
				opErr = fmt.Errorf("unknown config operation %d", cfg.Op)
			}
		}
		if opErr != nil {
			sr.ErrorCode = kerr.InvalidConfig.Code
			msg := opErr.Error()
			sr.ErrorMessage = &msg
		} else {
			raw := map[string]*string{}
			for k, val := range next {
				raw[k] = &val
			}
			sr.ErrorCode, sr.ErrorMessage = b.alterTopicConfigs(ctx, rr.ResourceType, rr.ResourceName, raw, next, req.ValidateOnly)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	b.awaitBrokers(ctx)
	return resp
}

// editList appends or removes the comma-separated items of change.
func editList(cur, change string, add bool) string {
	var items []string
	has := map[string]bool{}
	for _, it := range strings.Split(cur, ",") {
		if it = strings.TrimSpace(it); it != "" && !has[it] {
			items, has[it] = append(items, it), true
		}
	}
	for _, it := range strings.Split(change, ",") {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		if add && !has[it] {
			items, has[it] = append(items, it), true
		}
		if !add && has[it] {
			delete(has, it)
			for i, x := range items {
				if x == it {
					items = append(items[:i], items[i+1:]...)
					break
				}
			}
		}
	}
	return strings.Join(items, ",")
}
