package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestConsoleProducerAndConsumer(t *testing.T) {
	b := newBroker(t)
	s := newSession(t, b)
	mustOK(t, s.run("topics", "--create", "--topic", "sanguo", "--partitions", "1"))

	// Plain lines, then keys, headers and the null marker.
	mustOK(t, s.runIn("liubei\nguanyu\nzhangfei\n", "console-producer", "--topic", "sanguo"))
	mustOK(t, s.runIn("shu:liubei\nwei:caocao\n", "produce", "--topic", "sanguo",
		"--property", "parse.key=true", "--property", "key.separator=:", "--sync"))
	mustOK(t, s.runIn("kingdom:wu,empty:\twu\tsunquan\nNULL\tNULL\tNULL\n", "produce", "--topic", "sanguo",
		"--property", "parse.key=true", "--property", "parse.headers=true", "--property", "null.marker=NULL",
		"--compression-codec", "--request-required-acks", "1"))
	s.runIn("no separator here\n", "produce", "--topic", "sanguo", "--property", "parse.key=true")

	// The seed's consumer, then Kafka's formatter properties.
	mustOK(t, s.run("console-consumer", "--topic", "sanguo", "--from-beginning", "--max-messages", "7"))
	mustOK(t, s.run("consume", "--topic", "sanguo", "--from-beginning", "--max-messages", "7",
		"--property", "print.key=true", "--property", "print.timestamp=true", "--property", "print.partition=true",
		"--property", "print.offset=true", "--property", "print.headers=true", "--property", "print.epoch=true"))
	mustOK(t, s.run("consume", "--topic", "sanguo", "--from-beginning", "--max-messages", "7",
		"--formatter-property", "print.key=true", "--formatter-property", "key.separator= => ",
		"--formatter-property", "print.value=false", "--formatter-property", "null.literal=<none>",
		"--formatter-property", "line.separator=|"))
	mustOK(t, s.run("consume", "--topic", "sanguo", "--partition", "0", "--offset", "3", "--max-messages", "2"))
	mustOK(t, s.run("consume", "--topic", "sanguo", "--partition", "0", "--offset", "earliest", "--timeout-ms", "500"))
	mustOK(t, s.run("consume", "--include", "sang.*", "--from-beginning", "--max-messages", "1"))

	// A named group commits what was printed: a second run resumes.
	mustOK(t, s.run("consume", "--topic", "sanguo", "--group", "readers", "--from-beginning", "--max-messages", "4"))
	mustOK(t, s.run("consume", "--topic", "sanguo", "--group", "readers", "--from-beginning", "--timeout-ms", "1000"))
	mustOK(t, s.run("consumer-groups", "--describe", "--group", "readers"))

	// Errors.
	s.run("consume", "--topic", "nosuch", "--from-beginning")
	s.run("consume", "--topic", "sanguo", "--partition", "5")
	s.run("consume", "--topic", "sanguo", "--offset", "3")
	s.run("consume", "--topic", "sanguo", "--partition", "0", "--offset", "-4")
	s.run("consume", "--topic", "sanguo", "--group", "g", "--partition", "0")
	s.run("consume", "--topic", "sanguo", "--from-beginning", "--consumer-property", "auto.offset.reset=latest")
	s.run("consume", "--topic", "sanguo", "--property", "key.deserializer=com.example.Custom")
	s.run("produce")
	s.run("produce", "--topic", "sanguo", "-X", "no.such.setting=1")
	s.golden("console")
}

// TestConsoleConsumerDeserializers prints numeric keys and values with
// Kafka's deserializer class names.
func TestConsoleConsumerDeserializers(t *testing.T) {
	b := newBroker(t)
	s := newSession(t, b)
	cl := newClient(t, b, kgo.AllowAutoTopicCreation())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec := &kgo.Record{Topic: "nums", Key: []byte{0, 0, 0, 0, 0, 0, 1, 0}, Value: []byte{0xff, 0xff, 0xff, 0xfe}}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r := s.run("consume", "--topic", "nums", "--from-beginning", "--max-messages", "1", "--property", "print.key=true",
		"--key-deserializer", "org.apache.kafka.common.serialization.LongDeserializer",
		"--value-deserializer", "org.apache.kafka.common.serialization.IntegerDeserializer")
	mustOK(t, r)
	if r.stdout != "256\t-2\n" {
		t.Fatalf("got %q, want %q", r.stdout, "256\t-2\n")
	}
}

// TestConsoleConsumerCancel stops a consumer that waits for records, as
// Ctrl-C does, and still gets the count.
func TestConsoleConsumerCancel(t *testing.T) {
	b := newBroker(t)
	produce(t, b, "live", 0, "a", "b")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		done <- runCLI(t, ctx, "", "consume", "--bootstrap-server", b.Addr(), "--topic", "live", "--from-beginning")
	}()
	time.Sleep(1500 * time.Millisecond)
	cancel()
	select {
	case r := <-done:
		if r.code != 0 || r.stdout != "a\nb\n" || r.stderr != "Processed a total of 2 messages\n" {
			t.Fatalf("after cancel: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the consumer did not stop")
	}
}

// TestConsoleConsumerCommitsPrinted checks that --max-messages commits only
// the printed records, so the group's lag counts the rest.
func TestConsoleConsumerCommitsPrinted(t *testing.T) {
	b := newBroker(t)
	produce(t, b, "t", 0, "1", "2", "3", "4", "5")
	r := runCLI(t, context.Background(), "", "consume", "--bootstrap-server", b.Addr(), "--topic", "t", "--group", "g", "--from-beginning", "--max-messages", "2")
	mustOK(t, r)
	adm := kadm.NewClient(newClient(t, b))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("t", 0); !ok || o.At != 2 {
		t.Fatalf("committed %+v, want offset 2", o)
	}
	if !strings.HasSuffix(r.stderr, "Processed a total of 2 messages\n") {
		t.Fatalf("stderr %q", r.stderr)
	}
}
