package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// --log-format json gives one JSON object per line, text gives key=value;
// anything else is refused.
func TestLogFormat(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("slow request", "api", "Produce", "took_ms", 5100.5)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("json log line %q: %v", buf.String(), err)
	}
	if rec["msg"] != "slow request" || rec["api"] != "Produce" || rec["level"] != "INFO" {
		t.Errorf("json record %v", rec)
	}

	buf.Reset()
	log, err = newLogger(&buf, "warn", "text")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, `msg=shown k=v`) {
		t.Errorf("text log at warn: %q", out)
	}

	if _, err := newLogger(&buf, "info", "xml"); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("--log-format xml: %v", err)
	}
}
