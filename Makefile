# accessbus: every target needs only Go (and bash); buf runs from tools/go.mod.
SHELL := bash
BUF = $(shell GOWORK=off go -C tools tool -n buf)
MODULE_DIRS = $(shell go list -m -f '{{.Dir}}')

.PHONY: all test check generate bench fmt

all: check test

## test: every module's tests with -race -shuffle=on (starts redis-server if none answers)
test:
	./scripts/test.sh

## check: gofmt, go vet, buf lint and breaking, go mod tidy, generated code, manifests
check:
	./scripts/check.sh

## generate: protobuf and Connect code into libs/gen
generate:
	$(BUF) generate

## bench: the benchmarks (bus overhead against plain nats.go, ...)
bench:
	go test -run '^$$' -bench . -benchmem -count 5 ./libs/bus/

## fmt: format Go and proto sources
fmt:
	gofmt -w $(MODULE_DIRS) tools
	$(BUF) format -w
