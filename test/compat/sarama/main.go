// Command sarama runs the compatibility checks for IBM/sarama, the Go Kafka
// client, against the broker in $BOOTSTRAP.
//
//	cd test/compat/sarama && BOOTSTRAP=127.0.0.1:9092 go run .
//
// Every check runs twice: with sarama's default config.Version (2.8.0) and
// with the newest version it knows (sarama.MaxVersion). Sarama picks each
// request's version from config.Version, capped by what the broker
// advertises in ApiVersions, so the two passes speak different protocol
// versions to the same broker.
//
// Checks: ClusterAdmin (describe cluster, create/list/describe topics,
// describe and incrementally alter configs, create partitions, delete),
// SyncProducer with every codec (none, gzip, snappy, lz4, zstd) with keys,
// headers, empty and null values read back by a partition consumer from
// OffsetOldest and compared field by field (plus a raw Fetch asserting the
// batch's codec), the idempotent producer (offsets contiguous per partition in
// send order, batches carrying a producer id and gapless sequences), and with
// GREGOR_COMPAT_GROUPS=1 a two-member ConsumerGroup splitting three
// partitions, its committed offsets through ListConsumerGroupOffsets, and a
// new member resuming from them.
//
// Output: PASS/FAIL per check, then exactly one line "N passed, N failed";
// exit status 1 if any check failed.
//
// Environment:
//
//	BOOTSTRAP              host:port of the broker (required)
//	GREGOR_COMPAT_GROUPS=1 also run the consumer-group checks
//	COMPAT_ONLY=regex      run only checks whose name matches
//	COMPAT_TIMEOUT         seconds per check (default 30)
//	COMPAT_DEBUG=1         sarama's logger to stderr
package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"regexp"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/IBM/sarama"
)

// failure is what a check panics with through failf; anything else that
// panics is an unexpected error and gets its stack on stderr.
type failure struct{ msg string }

func failf(format string, args ...any) { panic(failure{fmt.Sprintf(format, args...)}) }

// must fails the check if err is non-nil.
func must(err error, what string) {
	if err != nil {
		failf("%s: %v", what, err)
	}
}

func expect(cond bool, format string, args ...any) {
	if !cond {
		failf(format, args...)
	}
}

type suite struct {
	bootstrap string
	only      *regexp.Regexp
	timeout   time.Duration
	groups    bool
	nonce     string
	passed    int
	failed    int
	failures  []string
}

func newSuite() *suite {
	s := &suite{bootstrap: os.Getenv("BOOTSTRAP"), timeout: 30 * time.Second,
		groups: os.Getenv("GREGOR_COMPAT_GROUPS") == "1"}
	if s.bootstrap == "" {
		fmt.Fprintln(os.Stderr, "sarama: BOOTSTRAP (host:port) is not set")
		fmt.Println("0 passed, 1 failed")
		os.Exit(2)
	}
	if only := os.Getenv("COMPAT_ONLY"); only != "" {
		s.only = regexp.MustCompile(only)
	}
	if t := os.Getenv("COMPAT_TIMEOUT"); t != "" {
		secs, err := strconv.ParseFloat(t, 64)
		if err != nil {
			log.Fatalf("COMPAT_TIMEOUT=%q: %v", t, err)
		}
		s.timeout = time.Duration(secs * float64(time.Second))
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	s.nonce = hex.EncodeToString(b)
	if os.Getenv("COMPAT_DEBUG") == "1" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags|log.Lmicroseconds)
	}
	return s
}

// topic is a name unique to this run; name keeps it readable.
func (s *suite) topic(name string) string { return "sarama-" + s.nonce + "-" + name }

func (s *suite) fail(name, reason string) {
	s.failed++
	s.failures = append(s.failures, name+": "+reason)
}

// check runs fn now as check name, within the suite's time budget. A check
// that overruns is reported and abandoned (its goroutine is left behind; the
// process exits at the end anyway).
func (s *suite) check(name string, fn func()) {
	if s.only != nil && !s.only.MatchString(name) {
		return
	}
	if c, err := net.DialTimeout("tcp", s.bootstrap, 3*time.Second); err != nil {
		s.fail(name, "broker unreachable")
		fmt.Printf("FAIL %s: broker %s unreachable (%v)\n", name, s.bootstrap, err)
		return
	} else {
		c.Close()
	}
	started := time.Now()
	done := make(chan string, 1)
	go func() {
		defer func() {
			r := recover()
			switch r := r.(type) {
			case nil:
				done <- ""
			case failure:
				done <- r.msg
			default:
				fmt.Fprintf(os.Stderr, "---- %s panic ----\n%v\n%s", name, r, debug.Stack())
				done <- fmt.Sprintf("panic: %v", r)
			}
		}()
		fn()
	}()
	var reason string
	select {
	case reason = <-done:
	case <-time.After(s.timeout):
		reason = fmt.Sprintf("check exceeded its %.0fs timeout", s.timeout.Seconds())
	}
	took := time.Since(started).Seconds()
	if reason == "" {
		s.passed++
		fmt.Printf("PASS %s (%.1fs)\n", name, took)
	} else {
		s.fail(name, reason)
		fmt.Printf("FAIL %s (%.1fs): %s\n", name, took, reason)
	}
}

func (s *suite) finish() {
	if len(s.failures) > 0 {
		fmt.Println("-- sarama failures --")
		for _, f := range s.failures {
			fmt.Println("  " + f)
		}
	}
	fmt.Printf("%d passed, %d failed\n", s.passed, s.failed)
	if s.failed > 0 {
		os.Exit(1)
	}
	os.Exit(0)
}

// profile is one config.Version the checks run under.
type profile struct {
	label   string               // check-name prefix
	version *sarama.KafkaVersion // nil: leave sarama's default
	s       *suite
}

// config is a fresh sarama config for this profile. Auto topic creation is
// off so a metadata request can never create a topic behind a check's back.
func (p *profile) config() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "gregor-compat-sarama"
	if p.version != nil {
		cfg.Version = *p.version
	}
	cfg.Metadata.AllowAutoTopicCreation = false
	cfg.Net.DialTimeout = 10 * time.Second
	cfg.Net.ReadTimeout = 15 * time.Second
	cfg.Net.WriteTimeout = 10 * time.Second
	cfg.Admin.Timeout = 10 * time.Second
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Consumer.Return.Errors = true
	return cfg
}

func (p *profile) check(name string, fn func()) { p.s.check(p.label+"/"+name, fn) }

func (p *profile) topic(name string) string { return p.s.topic(p.label + "-" + name) }

func (p *profile) admin() sarama.ClusterAdmin {
	a, err := sarama.NewClusterAdmin([]string{p.s.bootstrap}, p.config())
	must(err, "NewClusterAdmin")
	return a
}

func (p *profile) client(cfg *sarama.Config) sarama.Client {
	if cfg == nil {
		cfg = p.config()
	}
	c, err := sarama.NewClient([]string{p.s.bootstrap}, cfg)
	must(err, "NewClient")
	// Dial the registered brokers now. Sarama opens them lazily, and under
	// load its producer can reach a broker whose dial has not finished: it
	// fails the batch with "broker not connected", drops and closes that
	// broker (aborting whatever else was in flight on it) and retries, so a
	// non-idempotent producer writes a batch twice (seen here: p1-00 at
	// offsets 0 and 1, the broker log showing only the client's own EOF).
	for _, b := range c.Brokers() {
		if err := b.Open(cfg); err != nil && !errors.Is(err, sarama.ErrAlreadyConnected) {
			failf("open broker %s: %v", b.Addr(), err)
		}
		ok, err := b.Connected() // waits for the dial
		if !ok {
			failf("connect to broker %s: %v", b.Addr(), err)
		}
	}
	return c
}

// createTopic creates name with the given partition count through a
// throwaway ClusterAdmin.
func (p *profile) createTopic(name string, partitions int32) {
	a := p.admin()
	defer a.Close()
	must(a.CreateTopic(name, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false),
		"CreateTopic "+name)
}

func main() {
	s := newSuite()
	maxV := sarama.MaxVersion
	profiles := []*profile{
		{label: "default-" + sarama.DefaultVersion.String(), s: s},
		{label: "max-" + maxV.String(), version: &maxV, s: s},
	}
	for _, p := range profiles {
		p.adminChecks()
		p.produceChecks()
		p.idempotentCheck()
		p.cutBatchesCheck()
		if s.groups {
			p.groupChecks()
		}
	}
	s.finish()
}
