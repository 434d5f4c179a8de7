# make test    vet, unit/integration tests with the race detector, then the
#              real-client compatibility suite (needs test/compat/install.sh)
# make compat  only the compatibility suite
.PHONY: test compat

test:
	go vet ./...
	go test -race ./...
	bash test/compat/run.sh

compat:
	bash test/compat/run.sh
