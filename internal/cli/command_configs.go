package cli

// gregor configs: kafka-configs.sh for topics and brokers. --describe lists
// the dynamic configs (the topic's overrides; --all for every config) as
// Kafka does, "  name=value sensitive=false synonyms={SOURCE:name=value, ...}"
// under "Dynamic configs for topic X are:"; --alter applies
// --add-config/--delete-config with IncrementalAlterConfigs and prints
// "Completed updating config for topic X.".

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/config"
)

type configsOptions struct {
	conn connFlags

	entityType     string
	entityName     string
	entityDefault  bool
	topic          string
	broker         string
	brokerDefaults bool

	describe, alter, all bool
	addConfig            string
	addConfigFile        string
	deleteConfig         []string
}

func (o *configsOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	o.conn.AddFlags(f, "command-config")
	f.StringVar(&o.entityType, "entity-type", "", "topics or brokers")
	f.StringVar(&o.entityName, "entity-name", "", "topic name or broker id")
	f.BoolVar(&o.entityDefault, "entity-default", false, "the cluster-wide broker defaults (with --entity-type brokers)")
	f.StringVar(&o.topic, "topic", "", "short for --entity-type topics --entity-name T")
	f.StringVar(&o.broker, "broker", "", "short for --entity-type brokers --entity-name ID")
	f.BoolVar(&o.brokerDefaults, "broker-defaults", false, "short for --entity-type brokers --entity-default")
	f.BoolVar(&o.describe, "describe", false, "list the entity's dynamic configs")
	f.BoolVar(&o.alter, "alter", false, "change configs with --add-config / --delete-config")
	f.BoolVar(&o.all, "all", false, "with --describe, list every config, defaults included")
	f.StringVar(&o.addConfig, "add-config", "", "configs to set: k1=v1,k2=[v1,v2],k3=v3 (brackets group values holding commas)")
	f.StringVar(&o.addConfigFile, "add-config-file", "", "properties file of configs to set")
	f.StringSliceVar(&o.deleteConfig, "delete-config", nil, "config names to remove: k1,k2")
	f.Bool("force", false, "accepted for compatibility")
}

func newConfigsCommand() *cobra.Command {
	o := &configsOptions{}
	cmd := &cobra.Command{
		Use:   "configs --entity-type topics|brokers [--entity-name X] (--describe | --alter)",
		Short: "Describe or change topic and broker configs (kafka-configs.sh)",
		Example: `  gregor configs --bootstrap-server localhost:9092 --entity-type topics --entity-name sanguo --describe
  gregor configs --entity-type topics --entity-name sanguo --alter --add-config retention.ms=86400000,cleanup.policy=compact
  gregor configs --entity-type topics --entity-name sanguo --alter --delete-config retention.ms
  gregor configs --entity-type brokers --entity-name 1 --describe --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd) },
	}
	o.AddFlags(cmd)
	return cmd
}

// resolveEntity turns the entity flags into (type, name, hasName).
func (o *configsOptions) resolveEntity() (string, string, bool, error) {
	shortcuts := 0
	for _, b := range []bool{o.topic != "", o.broker != "", o.brokerDefaults} {
		if b {
			shortcuts++
		}
	}
	if shortcuts > 0 && (o.entityType != "" || o.entityName != "" || o.entityDefault) {
		return "", "", false, errors.New("--entity-{type,name,default} should not be used in conjunction with specific entity flags")
	}
	if shortcuts > 1 {
		return "", "", false, errors.New("give only one of --topic, --broker, --broker-defaults")
	}
	switch {
	case o.topic != "":
		return "topics", o.topic, true, nil
	case o.broker != "":
		return "brokers", o.broker, true, nil
	case o.brokerDefaults:
		return "brokers", "", true, nil
	}
	t := o.entityType
	switch t {
	case "topic":
		t = "topics"
	case "broker":
		t = "brokers"
	}
	switch t {
	case "":
		return "", "", false, errors.New("at least one entity type must be specified")
	case "topics", "brokers":
	case "users", "clients", "ips", "broker-loggers", "client-metrics", "groups":
		return "", "", false, fmt.Errorf("entity type %s is not supported by Gregor (topics and brokers are)", t)
	default:
		return "", "", false, fmt.Errorf("invalid entity type %s, the entity type must be one of topics, brokers", t)
	}
	if o.entityDefault {
		if t != "brokers" {
			return "", "", false, errors.New("--entity-default is only valid with --entity-type brokers")
		}
		if o.entityName != "" {
			return "", "", false, errors.New("--entity-name and --entity-default cannot be used together")
		}
		return t, "", true, nil
	}
	if t == "brokers" && o.entityName != "" {
		if _, err := strconv.ParseInt(o.entityName, 10, 32); err != nil {
			return "", "", false, fmt.Errorf("the entity name for brokers must be a valid integer broker id, but it is: %s", o.entityName)
		}
	}
	return t, o.entityName, o.entityName != "", nil
}

func (o *configsOptions) run(cmd *cobra.Command) error {
	if o.describe == o.alter {
		return errors.New("command must include exactly one action: --describe, --alter")
	}
	etype, name, hasName, err := o.resolveEntity()
	if err != nil {
		return err
	}
	if o.alter && !hasName {
		return errors.New("--entity-name or --entity-default must be specified with each --entity-type for --alter")
	}
	if o.alter && o.addConfig == "" && o.addConfigFile == "" && len(o.deleteConfig) == 0 {
		return errors.New("--alter needs --add-config, --add-config-file or --delete-config")
	}
	if o.describe && (o.addConfig != "" || o.addConfigFile != "" || len(o.deleteConfig) > 0) {
		return errors.New("--add-config and --delete-config are only valid with --alter")
	}
	ctx, cancel := adminContext(cmd)
	defer cancel()
	adm, err := newAdmin(ctx, cmd, &o.conn)
	if err != nil {
		return err
	}
	defer adm.Close()
	if o.alter {
		return o.runAlter(cmd, adm, etype, name)
	}
	return o.runDescribe(cmd, adm, etype, name, hasName)
}

func singular(etype string) string { return strings.TrimSuffix(etype, "s") }

// sourceName is Kafka's ConfigEntry.ConfigSource name for a wire source.
func sourceName(s kmsg.ConfigSource) string {
	switch s {
	case 7:
		return "DYNAMIC_CLIENT_METRICS_CONFIG"
	case 8:
		return "DYNAMIC_GROUP_CONFIG"
	}
	return s.String()
}

// dynamicSource is the source --describe shows without --all.
func dynamicSource(etype, name string) kmsg.ConfigSource {
	switch {
	case etype == "topics":
		return kmsg.ConfigSourceDynamicTopicConfig
	case name == "":
		return kmsg.ConfigSourceDynamicDefaultBrokerConfig
	}
	return kmsg.ConfigSourceDynamicBrokerConfig
}

// describeConfigs asks for one resource's configs with synonyms.
func describeConfigs(cmd *cobra.Command, adm *adminClient, etype, name string) ([]kadm.Config, error) {
	ctx, cancel := adminContext(cmd)
	defer cancel()
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.IncludeSynonyms = true
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeTopic
	if etype == "brokers" {
		rr.ResourceType = kmsg.ConfigResourceTypeBroker
	}
	rr.ResourceName = name
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, adm.cl)
	if err != nil {
		return nil, err
	}
	if len(resp.Resources) != 1 {
		return nil, errors.New("malformed DescribeConfigs response")
	}
	r := resp.Resources[0]
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("topic '%s' does not exist", name)
		}
		return nil, kafkaError(err, deref(r.ErrorMessage))
	}
	var out []kadm.Config
	for _, c := range r.Configs {
		kc := kadm.Config{Key: c.Name, Value: c.Value, Sensitive: c.IsSensitive, Source: c.Source}
		for _, s := range c.ConfigSynonyms {
			kc.Synonyms = append(kc.Synonyms, kadm.ConfigSynonym{Key: s.Name, Value: s.Value, Source: s.Source})
		}
		out = append(out, kc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func nullable(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}

func (o *configsOptions) runDescribe(cmd *cobra.Command, adm *adminClient, etype, name string, hasName bool) error {
	var entities []string
	if hasName {
		entities = []string{name}
	} else {
		ctx, cancel := adminContext(cmd)
		defer cancel()
		if etype == "topics" {
			tds, err := adm.ListTopicsWithInternal(ctx)
			if err != nil {
				return err
			}
			entities = tds.Names()
		} else {
			bs, err := adm.ListBrokers(ctx)
			if err != nil {
				return err
			}
			for _, id := range bs.NodeIDs() {
				entities = append(entities, strconv.Itoa(int(id)))
			}
			entities = append(entities, "") // the cluster defaults
		}
	}
	out := cmd.OutOrStdout()
	for _, e := range entities {
		cfgs, err := describeConfigs(cmd, adm, etype, e)
		if err != nil {
			return err
		}
		switch {
		case etype == "brokers" && e == "":
			fmt.Fprintf(out, "Default configs for %s in the cluster are:\n", etype)
		case o.all:
			fmt.Fprintf(out, "All configs for %s %s are:\n", singular(etype), e)
		default:
			fmt.Fprintf(out, "Dynamic configs for %s %s are:\n", singular(etype), e)
		}
		want := dynamicSource(etype, e)
		for _, c := range cfgs {
			if !o.all && c.Source != want {
				continue
			}
			printConfigEntry(out, c)
		}
	}
	return nil
}

func printConfigEntry(out io.Writer, c kadm.Config) {
	syn := make([]string, 0, len(c.Synonyms))
	for _, s := range c.Synonyms {
		syn = append(syn, fmt.Sprintf("%s:%s=%s", sourceName(s.Source), s.Key, nullable(s.Value)))
	}
	fmt.Fprintf(out, "  %s=%s sensitive=%t synonyms={%s}\n", c.Key, nullable(c.Value), c.Sensitive, strings.Join(syn, ", "))
}

// parseAddConfig reads "k1=v1,k2=[v1,v2],k3=v3"; brackets are dropped.
func parseAddConfig(s string) (map[string]string, error) {
	out := map[string]string{}
	var parts []string
	depth, startIdx := 0, 0
	for i, r := range s {
		switch r {
		case '[':
			depth++
		case ']':
			if depth > 0 {
				depth--
			}
		case ',':
			if depth == 0 {
				parts = append(parts, s[startIdx:i])
				startIdx = i + 1
			}
		}
	}
	parts = append(parts, s[startIdx:])
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, errors.New("invalid entity config: all configs to be added must be in the format \"key=val\"")
		}
		if !validConfigKey.MatchString(k) {
			return nil, fmt.Errorf("invalid character found for config key: %s", k)
		}
		v = strings.NewReplacer("[", "", "]", "").Replace(v)
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

var validConfigKey = regexp.MustCompile(`^[a-zA-Z0-9._-]*$`)

func (o *configsOptions) runAlter(cmd *cobra.Command, adm *adminClient, etype, name string) error {
	add := map[string]string{}
	if o.addConfigFile != "" {
		fileProps, err := config.ReadPropertiesFile(o.addConfigFile)
		if err != nil {
			return err
		}
		add = fileProps
	}
	if o.addConfig != "" {
		more, err := parseAddConfig(o.addConfig)
		if err != nil {
			return err
		}
		for k, v := range more {
			add[k] = v
		}
	}
	var del []string
	for _, k := range o.deleteConfig {
		if k = strings.TrimSpace(k); k != "" {
			del = append(del, k)
		}
	}
	// Kafka refuses to delete a config that is not set on the entity.
	if len(del) > 0 {
		cfgs, err := describeConfigs(cmd, adm, etype, name)
		if err != nil {
			return err
		}
		set := map[string]bool{}
		want := dynamicSource(etype, name)
		for _, c := range cfgs {
			if c.Source == want {
				set[c.Key] = true
			}
		}
		var invalid []string
		for _, k := range del {
			if !set[k] {
				invalid = append(invalid, k)
			}
		}
		if len(invalid) > 0 {
			return fmt.Errorf("invalid config(s): %s", strings.Join(invalid, ","))
		}
	}
	keys := make([]string, 0, len(add))
	for k := range add {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var alters []kadm.AlterConfig
	for _, k := range keys {
		v := add[k]
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
	}
	for _, k := range del {
		alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	ctx, cancel := adminContext(cmd)
	defer cancel()
	var resps kadm.AlterConfigsResponses
	var err error
	if etype == "topics" {
		resps, err = adm.AlterTopicConfigs(ctx, alters, name)
	} else if name == "" {
		resps, err = adm.AlterBrokerConfigs(ctx, alters)
	} else {
		id, _ := strconv.ParseInt(name, 10, 32)
		resps, err = adm.AlterBrokerConfigs(ctx, alters, int32(id))
	}
	if err != nil {
		return err
	}
	for _, r := range resps {
		if r.Err != nil {
			if errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
				return fmt.Errorf("topic '%s' does not exist", name)
			}
			return kafkaError(r.Err, r.ErrMessage)
		}
	}
	out := cmd.OutOrStdout()
	if name == "" {
		fmt.Fprintf(out, "Completed updating default config for %s in the cluster.\n", etype)
	} else {
		fmt.Fprintf(out, "Completed updating config for %s %s.\n", singular(etype), name)
	}
	return nil
}
