package broker

// DescribeConfigs (key 32), versions 0-4.
//
// Topics: every topic config Kafka 4.1 knows (topic_configs.go), with the
// effective value and its source — DYNAMIC_TOPIC_CONFIG for an override,
// STATIC_BROKER_CONFIG when the broker's server.properties (or env/flags)
// set the synonym, DEFAULT_CONFIG otherwise — and, when asked, the synonyms
// and documentation. Brokers (resource name "" or this node's id): the
// broker properties in effect, all read-only since dynamic broker configs
// are not supported yet.

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(32, 0, 4, handleDescribeConfigs)
}

const (
	resourceTopic  = int8(kmsg.ConfigResourceTypeTopic)
	resourceBroker = int8(kmsg.ConfigResourceTypeBroker)
)

func handleDescribeConfigs(c *conn, v int16, req *kmsg.DescribeConfigsRequest) *kmsg.DescribeConfigsResponse {
	b := c.b
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		wanted := func(name string) bool {
			if rr.ConfigNames == nil {
				return true
			}
			for _, n := range rr.ConfigNames {
				if n == name {
					return true
				}
			}
			return false
		}
		switch int8(rr.ResourceType) {
		case resourceTopic:
			t := b.catalog.get(rr.ResourceName)
			if t == nil {
				sr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				msg := "Topic " + rr.ResourceName + " does not exist."
				sr.ErrorMessage = &msg
				break
			}
			for i := range topicConfigDefs {
				def := &topicConfigDefs[i]
				if !wanted(def.name) {
					continue
				}
				r := b.resolveTopicConfig(def, t.Configs)
				sc := describedConfig(v, def.name, r.value, r.source, def.typ, def.doc, false)
				if req.IncludeSynonyms {
					for _, s := range r.synonyms {
						ss := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
						ss.Name, ss.Source = s.name, s.source
						val := s.value
						ss.Value = &val
						sc.ConfigSynonyms = append(sc.ConfigSynonyms, ss)
					}
				}
				if !req.IncludeDocumentation {
					sc.Documentation = nil
				}
				sr.Configs = append(sr.Configs, sc)
			}
		case resourceBroker:
			if !b.isBrokerResource(rr.ResourceName) {
				sr.ErrorCode = kerr.InvalidRequest.Code
				msg := "Unexpected broker id, expected " + strconv.Itoa(int(b.cfg.NodeID)) + " or empty string, but received " + rr.ResourceName
				sr.ErrorMessage = &msg
				break
			}
			dyn := b.dynamicFor(rr.ResourceName)
			for _, k := range b.brokerPropNames() {
				if !wanted(k) {
					continue
				}
				val, src, _ := b.brokerProp(k)
				if rr.ResourceName == "" {
					// The cluster-default resource shows only its own
					// dynamic values, as in Kafka.
					v, ok := dyn[k]
					if !ok {
						continue
					}
					val, src = v, kmsg.ConfigSourceDynamicDefaultBrokerConfig
				}
				typ := kmsg.ConfigTypeString
				def := dynamicBrokerConfigs[k]
				if def != nil {
					typ = def.typ
				}
				sc := describedConfig(v, k, val, src, typ, "", def == nil)
				if req.IncludeSynonyms {
					for _, l := range b.brokerPropLayers(k) {
						ss := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
						ss.Name, ss.Source = l.name, l.source
						sv := l.value
						ss.Value = &sv
						sc.ConfigSynonyms = append(sc.ConfigSynonyms, ss)
					}
				}
				if !req.IncludeDocumentation {
					sc.Documentation = nil
				}
				sr.Configs = append(sr.Configs, sc)
			}
		default:
			sr.ErrorCode = kerr.InvalidRequest.Code
			msg := "Unsupported resource type"
			sr.ErrorMessage = &msg
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

func describedConfig(v int16, name, value string, src kmsg.ConfigSource, typ kmsg.ConfigType, doc string, readOnly bool) kmsg.DescribeConfigsResponseResourceConfig {
	sc := kmsg.NewDescribeConfigsResponseResourceConfig()
	sc.Name = name
	val := value
	sc.Value = &val
	sc.ReadOnly = readOnly
	sc.Source = src
	sc.IsDefault = src == kmsg.ConfigSourceDefaultConfig
	sc.ConfigType = typ
	if doc != "" {
		d := doc
		sc.Documentation = &d
	}
	return sc
}
