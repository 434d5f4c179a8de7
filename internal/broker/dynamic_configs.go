package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/config"
)

// dynamicFile holds broker configs set at run time with the alter-config
// APIs, as Kafka keeps them in its metadata log: per broker (resource name
// "1") and cluster-wide defaults (resource name "").
const dynamicFile = "gregor-broker-configs.json"

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
	return m
}()

// dynamicConfigs are the run-time broker configs. mu guards both maps and
// their file.
type dynamicConfigs struct {
	mu      sync.RWMutex
	path    string
	broker  map[string]string // this node's
	cluster map[string]string // cluster-wide defaults
}

type dynamicFileBody struct {
	Broker  map[string]string `json:"broker,omitempty"`
	Cluster map[string]string `json:"cluster,omitempty"`
}

func openDynamicConfigs(dir string) (*dynamicConfigs, error) {
	d := &dynamicConfigs{path: filepath.Join(dir, dynamicFile), broker: map[string]string{}, cluster: map[string]string{}}
	data, err := os.ReadFile(d.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return d, nil
	case err != nil:
		return nil, fmt.Errorf("broker: %w", err)
	}
	var body dynamicFileBody
	if err := json.Unmarshal(data, &body); err != nil {
		return nil, fmt.Errorf("broker: %s: %w", d.path, err)
	}
	if body.Broker != nil {
		d.broker = body.Broker
	}
	if body.Cluster != nil {
		d.cluster = body.Cluster
	}
	return d, nil
}

// brokerProp returns a broker property's effective value and source:
// per-broker dynamic, then cluster-default dynamic, then the static config
// (file, environment, flags), then the built-in default.
func (b *Broker) brokerProp(name string) (string, kmsg.ConfigSource, bool) {
	b.dyn.mu.RLock()
	defer b.dyn.mu.RUnlock()
	if v, ok := b.dyn.broker[name]; ok {
		return v, kmsg.ConfigSourceDynamicBrokerConfig, true
	}
	if v, ok := b.dyn.cluster[name]; ok {
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
	b.dyn.mu.RLock()
	defer b.dyn.mu.RUnlock()
	var out []configSynonym
	if v, ok := b.dyn.broker[name]; ok {
		out = append(out, configSynonym{name, v, kmsg.ConfigSourceDynamicBrokerConfig})
	}
	if v, ok := b.dyn.cluster[name]; ok {
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
	b.dyn.mu.RLock()
	defer b.dyn.mu.RUnlock()
	seen := map[string]bool{}
	for k := range b.cfg.Raw {
		seen[k] = true
	}
	for k := range b.dyn.broker {
		seen[k] = true
	}
	for k := range b.dyn.cluster {
		seen[k] = true
	}
	names := make([]string, 0, len(seen))
	for k := range seen {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// isBrokerResource accepts "" (cluster default) and this node's id.
func (b *Broker) isBrokerResource(name string) bool {
	return name == "" || name == strconv.Itoa(int(b.cfg.NodeID))
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

// alterBrokerConfigs replaces the dynamic configs of a broker resource and
// applies them to every topic that falls back on them.
func (b *Broker) alterBrokerConfigs(name string, next map[string]string, validateOnly bool) error {
	raw := map[string]*string{}
	for k, v := range next {
		raw[k] = &v
	}
	if err := validateDynamic(raw); err != nil {
		return err
	}
	if validateOnly {
		return nil
	}
	b.dyn.mu.Lock()
	body := dynamicFileBody{Broker: b.dyn.broker, Cluster: b.dyn.cluster}
	if name == "" {
		body.Cluster = next
	} else {
		body.Broker = next
	}
	data, err := json.MarshalIndent(body, "", "  ")
	if err == nil {
		err = writeFileAtomic(b.dyn.path, data)
	}
	if err == nil {
		b.dyn.broker, b.dyn.cluster = body.Broker, body.Cluster
	}
	b.dyn.mu.Unlock()
	if err != nil {
		return err
	}
	b.catalog.reapply()
	b.log.Info("altered dynamic broker configs", "resource", name, "configs", next)
	return nil
}

// dynamicFor returns a copy of the dynamic configs of a broker resource.
func (b *Broker) dynamicFor(name string) map[string]string {
	b.dyn.mu.RLock()
	defer b.dyn.mu.RUnlock()
	src := b.dyn.broker
	if name == "" {
		src = b.dyn.cluster
	}
	out := make(map[string]string, len(src))
	for k, v := range src {
		out[k] = v
	}
	return out
}
