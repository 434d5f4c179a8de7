# make test    installs the client tools the compatibility suites need (idempotent),
#              then vet, unit/integration/crash/cluster tests with the race detector,
#              and the real-client compatibility suites (one broker, then 3 nodes)
# make compat  only the compatibility suites
# make compat-cluster  the same real clients against a 3-node cluster
#              (test/compat/cluster.sh, ~4.5 min; make test runs it too)
# make fuzz    the fuzz targets, FUZZTIME each (default 2m)
# make bench   Go micro-benchmarks with allocations
# make cluster-faults  the controller failover campaign of test/cluster
#              with 20 kills of the active controller (make test runs 3)
# make repl-faults  the replication campaign of test/cluster
#              (TestReplicationJepsen): 50 mixed faults (kill -9 of a leader
#              or any node, SIGSTOP of a leader, a leader cut off from its
#              peers by faultnet, clean bounces) under idempotent acks=all
#              producers and consumers, then no acknowledged record lost,
#              duplicated or moved (make test runs 5)
# make txn-faults  the transactions campaign of test/crash
#              (TestTransactionsExactlyOnceUnderKill9): a franz-go read-process-write
#              pipeline under 30 kill -9s, then exactly-once output, no aborted
#              reads (make test runs 5)
# make compact-faults  the compaction campaign of test/crash
#              (TestCompactionSurvivesKill9): 20 kill -9s of a broker compacting
#              a topic under keyed acks=all load (make test runs 5)
.PHONY: test deps compat compat-cluster fuzz bench build cluster-faults repl-faults txn-faults compact-faults

FUZZTIME ?= 2m

build:
	go build -o gregor ./cmd/gregor

deps:
	bash test/compat/install.sh

test: deps
	go vet ./...
	go test -race ./...
	go build -o .gregor-compat ./cmd/gregor
	GREGOR_BIN=$(CURDIR)/.gregor-compat bash test/compat/run.sh
	GREGOR_BIN=$(CURDIR)/.gregor-compat bash test/compat/cluster.sh

compat:
	bash test/compat/run.sh

compat-cluster:
	bash test/compat/cluster.sh

fuzz:
	go test -run XXX -fuzz FuzzRequest -fuzztime $(FUZZTIME) ./internal/broker/
	go test -run XXX -fuzz FuzzParseRequest -fuzztime $(FUZZTIME) ./internal/wire/
	go test -run XXX -fuzz FuzzReadFrame -fuzztime $(FUZZTIME) ./internal/wire/
	go test -run XXX -fuzz FuzzAppend -fuzztime $(FUZZTIME) ./internal/storage/
	go test -run XXX -fuzz FuzzRecover -fuzztime $(FUZZTIME) ./internal/storage/
	go test -run XXX -fuzz FuzzDecodeBatch -fuzztime $(FUZZTIME) ./internal/metadata/

bench:
	go test -run XXX -bench . -benchmem ./internal/...

cluster-faults:
	GREGOR_CLUSTER_KILLS=20 go test -count=1 -run TestClusterControllerFailover -v ./test/cluster/

repl-faults:
	GREGOR_REPL_FAULTS=50 go test -count=1 -run TestReplicationJepsen -v -timeout 60m ./test/cluster/

txn-faults:
	GREGOR_TXN_KILLS=30 go test -count=1 -run TestTransactionsExactlyOnceUnderKill9 -v -timeout 30m ./test/crash/

compact-faults:
	GREGOR_COMPACT_KILLS=20 go test -count=1 -run TestCompactionSurvivesKill9 -v -timeout 30m ./test/crash/
