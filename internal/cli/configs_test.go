package cli_test

import "testing"

func TestConfigs(t *testing.T) {
	b := newBroker(t)
	s := newSession(t, b)
	mustOK(t, s.run("topics", "--create", "--topic", "sanguo", "--config", "retention.ms=86400000"))
	mustOK(t, s.run("configs", "--entity-type", "topics", "--entity-name", "sanguo", "--describe"))
	mustOK(t, s.run("configs", "--entity-type", "topics", "--entity-name", "sanguo", "--alter",
		"--add-config", "max.message.bytes=2097152,cleanup.policy=[compact,delete]"))
	mustOK(t, s.run("configs", "--topic", "sanguo", "--describe"))
	mustOK(t, s.run("configs", "--entity-type", "topics", "--entity-name", "sanguo", "--alter", "--delete-config", "retention.ms,cleanup.policy"))
	mustOK(t, s.run("configs", "--entity-type", "topics", "--describe"))
	mustOK(t, s.run("configs", "--entity-type", "brokers", "--entity-name", "1", "--describe"))
	mustOK(t, s.run("configs", "--entity-type", "brokers", "--describe"))
	mustOK(t, s.run("configs", "--entity-type", "brokers", "--entity-default", "--describe"))

	s.run("configs", "--entity-type", "topics", "--entity-name", "sanguo", "--alter", "--delete-config", "retention.ms")
	s.run("configs", "--entity-type", "topics", "--entity-name", "sanguo", "--alter", "--add-config", "retention.ms=forever")
	s.run("configs", "--entity-type", "topics", "--entity-name", "nosuch", "--describe")
	s.run("configs", "--entity-type", "topics", "--entity-name", "nosuch", "--alter", "--add-config", "retention.ms=1")
	s.run("configs", "--entity-type", "brokers", "--entity-name", "1", "--alter", "--add-config", "log.retention.ms=1000")
	s.run("configs", "--entity-type", "brokers", "--entity-name", "1", "--describe")
	s.run("configs", "--entity-type", "brokers", "--entity-name", "1", "--alter", "--add-config", "listeners=PLAINTEXT://x:1")
	s.run("configs", "--entity-type", "brokers", "--entity-name", "one", "--describe")
	s.run("configs", "--entity-type", "users", "--describe")
	s.run("configs", "--entity-type", "topics", "--alter", "--add-config", "a=b")
	s.run("configs", "--entity-type", "topics", "--entity-name", "sanguo")
	s.run("configs", "--entity-type", "topics", "--entity-name", "sanguo", "--alter", "--add-config", "novalue")
	s.golden("configs")

	// --all lists every topic config with its source; check the shape only,
	// since the table of configs is the broker's business.
	r := s.run("configs", "--entity-type", "topics", "--entity-name", "sanguo", "--describe", "--all")
	mustOK(t, r)
	wantLine(t, r.stdout, "All configs for topic sanguo are:")
	wantLine(t, r.stdout, "  max.message.bytes=2097152 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:max.message.bytes=2097152, DEFAULT_CONFIG:message.max.bytes=1048588}")
}

func wantLine(t *testing.T, out, line string) {
	t.Helper()
	for _, l := range splitLines(out) {
		if l == line {
			return
		}
	}
	t.Fatalf("no line %q in:\n%s", line, out)
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}
