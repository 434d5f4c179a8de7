# make test    installs the client tools the compatibility suites need (idempotent),
#              then vet, unit/integration/crash tests with the race detector, and
#              the real-client compatibility suites
# make compat  only the compatibility suites
# make compat-cluster  the same real clients against a 3-node cluster
#              (test/compat/cluster.sh, ~5 min: not part of make test)
# make fuzz    the fuzz targets, FUZZTIME each (default 2m)
# make bench   Go micro-benchmarks with allocations
.PHONY: test deps compat compat-cluster fuzz bench build

FUZZTIME ?= 2m

build:
	go build -o gregor ./cmd/gregor

deps:
	bash test/compat/install.sh

test: deps
	go vet ./...
	go test -race ./...
	bash test/compat/run.sh

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
