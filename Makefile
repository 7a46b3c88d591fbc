# berth's build and test entry points.

GO ?= go
FUZZTIME ?= 10s

.PHONY: build test unit fuzz bench clean

build:
	$(GO) build -o bin/berth ./cmd/berth

# The whole test suite: vet, every package's tests (the acceptance tests
# build the real binaries and kill them at every step), then a short run of
# every fuzz target.
test: unit fuzz

unit:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./spec/addr
	$(GO) test -run '^$$' -fuzz '^FuzzConfig$$' -fuzztime $(FUZZTIME) ./spec
	$(GO) test -run '^$$' -fuzz '^FuzzPlan$$' -fuzztime $(FUZZTIME) ./reconciler

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./reconciler

clean:
	rm -rf bin
