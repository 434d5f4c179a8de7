package broker

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/config"
	"github.com/gregorhq/gregor/internal/controller"
	"github.com/gregorhq/gregor/internal/metadata"
)

// dynamicBrokerConfigs are the broker properties that can change at run
// time: the log defaults that topic configs fall back to. Everything else
// (listeners, log.dirs, …) needs a restart, as in Kafka's static configs.
var dynamicBrokerConfigs = func() map[string]*topicConfigDef {
	m := map[string]*topicConfigDef{}
	for i := range topicConfigDefs {
		def := &topicConfigDefs[i]
		for _, s := range def.synonyms {
			m[s] = def
		}
	}
	for i := range throttleConfigDefs {
		m[throttleConfigDefs[i].name] = &throttleConfigDefs[i]
	}
	return m
}()

// throttleConfigDefs are the replication throttles (KIP-73), set per
// broker by kafka-reassign-partitions.sh --throttle: bytes per second a
// leader sends to, and a follower fetches for, the replicas named in the
// topics' *.replication.throttled.replicas (throttle.go).
var throttleConfigDefs = []topicConfigDef{
	{name: "leader.replication.throttled.rate", typ: kmsg.ConfigTypeLong, def: "9223372036854775807", check: checkMinLong(0),
		doc: "Bytes per second this broker sends to followers of throttled replicas."},
	{name: "follower.replication.throttled.rate", typ: kmsg.ConfigTypeLong, def: "9223372036854775807", check: checkMinLong(0),
		doc: "Bytes per second this broker fetches as a follower of throttled replicas."},
}

// The run-time broker configs live in the metadata log as Config records
// of the broker resource: per broker (resource name "1") and cluster-wide
// defaults (resource name ""), as in Kafka.

// dynBroker and dynCluster are this node's and the cluster-wide dynamic
// broker configs in the newest applied image (do not modify).
func (b *Broker) dynBroker() map[string]string {
	return b.meta.Image().Configs(metadata.ResourceBroker, strconv.Itoa(int(b.cfg.NodeID)))
}

func (b *Broker) dynCluster() map[string]string {
	return b.meta.Image().Configs(metadata.ResourceBroker, "")
}

// brokerProp returns a broker property's effective value and source:
// per-broker dynamic, then cluster-default dynamic, then the static config
// (file, environment, flags), then the built-in default.
func (b *Broker) brokerProp(name string) (string, kmsg.ConfigSource, bool) {
	if v, ok := b.dynBroker()[name]; ok {
		return v, kmsg.ConfigSourceDynamicBrokerConfig, true
	}
	if v, ok := b.dynCluster()[name]; ok {
		return v, kmsg.ConfigSourceDynamicDefaultBrokerConfig, true
	}
	if v, ok := b.cfg.Raw[name]; ok {
		if b.cfg.Sources[name] == config.SourceDefault {
			return v, kmsg.ConfigSourceDefaultConfig, true
		}
		return v, kmsg.ConfigSourceStaticBrokerConfig, true
	}
	return "", kmsg.ConfigSourceUnknown, false
}

// brokerPropLayers lists every layer that sets a broker property, most
// specific first, as DescribeConfigs' synonyms do.
func (b *Broker) brokerPropLayers(name string) []configSynonym {
	var out []configSynonym
	if v, ok := b.dynBroker()[name]; ok {
		out = append(out, configSynonym{name, v, kmsg.ConfigSourceDynamicBrokerConfig})
	}
	if v, ok := b.dynCluster()[name]; ok {
		out = append(out, configSynonym{name, v, kmsg.ConfigSourceDynamicDefaultBrokerConfig})
	}
	if v, ok := b.cfg.Raw[name]; ok {
		src := kmsg.ConfigSourceStaticBrokerConfig
		if b.cfg.Sources[name] == config.SourceDefault {
			src = kmsg.ConfigSourceDefaultConfig
		}
		out = append(out, configSynonym{name, v, src})
	}
	return out
}

// brokerPropNames lists every broker property with a value, sorted.
func (b *Broker) brokerPropNames() []string {
	seen := map[string]bool{}
	for k := range b.cfg.Raw {
		seen[k] = true
	}
	for k := range b.dynBroker() {
		seen[k] = true
	}
	for k := range b.dynCluster() {
		seen[k] = true
	}
	names := make([]string, 0, len(seen))
	for k := range seen {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// isBrokerResource accepts "" (cluster default) and this node's id: a
// broker describes only its own configs, as in Kafka.
func (b *Broker) isBrokerResource(name string) bool {
	return name == "" || name == strconv.Itoa(int(b.cfg.NodeID))
}

// isAlterableBroker accepts what the controller may change: the cluster
// default and any registered broker (a broker forwards changes of its own
// configs to the controller).
func (b *Broker) isAlterableBroker(name string) bool {
	if b.isBrokerResource(name) {
		return true
	}
	id, err := strconv.Atoi(name)
	return err == nil && b.meta.Image().Broker(int32(id)) != nil
}

// validateDynamic checks run-time broker config changes.
func validateDynamic(cfgs map[string]*string) error {
	for k, v := range cfgs {
		def := dynamicBrokerConfigs[k]
		if def == nil {
			return fmt.Errorf("Cannot update these configs dynamically: Set(%s)", k)
		}
		if v == nil {
			continue
		}
		if err := def.check(brokerSynonymValue(k, *v)); err != nil {
			return fmt.Errorf("Invalid value %s for configuration %s: %v", *v, k, err)
		}
	}
	return nil
}

// alterBrokerConfigs replaces the dynamic configs of a broker resource
// through the controller; every broker applies them to the topics that
// fall back on them when it publishes the change.
func (b *Broker) alterBrokerConfigs(ctx context.Context, name string, next map[string]string, validateOnly bool) error {
	raw := map[string]*string{}
	for k, v := range next {
		raw[k] = &v
	}
	if err := validateDynamic(raw); err != nil {
		return err
	}
	if err := b.ctl.AlterConfigs(ctx, metadata.ResourceBroker, name, configOps(b.dynamicFor(name), next), validateOnly); err != nil {
		return err
	}
	if !validateOnly {
		b.log.Info("altered dynamic broker configs", "resource", name, "configs", next)
	}
	return nil
}

// configOps turns a whole new set of configs into changes from cur.
func configOps(cur, next map[string]string) []controller.ConfigOp {
	var ops []controller.ConfigOp
	for _, k := range sortedKeys(next) {
		if v, ok := cur[k]; !ok || v != next[k] {
			val := next[k]
			ops = append(ops, controller.ConfigOp{Name: k, Value: &val})
		}
	}
	for _, k := range sortedKeys(cur) {
		if _, ok := next[k]; !ok {
			ops = append(ops, controller.ConfigOp{Name: k})
		}
	}
	return ops
}

// dynamicFor returns a copy of the dynamic configs of a broker resource.
func (b *Broker) dynamicFor(name string) map[string]string {
	out := maps.Clone(b.meta.Image().Configs(metadata.ResourceBroker, name))
	if out == nil {
		out = map[string]string{}
	}
	return out
}
