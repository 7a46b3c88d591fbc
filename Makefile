# berth's build and test entry points.

GO ?= go
FUZZTIME ?= 10s

.PHONY: build test unit fuzz bench bench-linux clean demo demo-destroy

build:
	$(GO) build -o bin/berth ./cmd/berth
	$(GO) build -o bin/berth-shim ./cmd/berth-shim

# The whole test suite: vet, every package's tests (the acceptance tests
# build the real binaries and kill them at every step), then a short run of
# every fuzz target.
test: unit fuzz

unit:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

# The slow targets (each input unpacks, copies or loads an archive) run a
# number of inputs rather than a time: a slow input still running when the
# time is up would fail the run with "context deadline exceeded".
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./spec/addr
	$(GO) test -run '^$$' -fuzz '^FuzzConfig$$' -fuzztime $(FUZZTIME) ./spec
	$(GO) test -run '^$$' -fuzz '^FuzzPlan$$' -fuzztime $(FUZZTIME) ./reconciler
	$(GO) test -run '^$$' -fuzz '^FuzzUnpack$$' -fuzztime 3000x -fuzzminimizetime 2s ./providers/linux/layer
	$(GO) test -run '^$$' -fuzz '^FuzzParseReference$$' -fuzztime $(FUZZTIME) ./providers/linux/registry
	$(GO) test -run '^$$' -fuzz '^FuzzResolve$$' -fuzztime 3000x -fuzzminimizetime 2s ./providers/linux/transfer
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime 1000x -fuzzminimizetime 2s ./providers/linux/content
	$(GO) test -run '^$$' -fuzz '^FuzzAllocateRelease$$' -fuzztime 2000x -fuzzminimizetime 2s ./providers/linux/ipam
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./providers/linux/firewall
	$(GO) test -run '^$$' -fuzz '^FuzzResolvConf$$' -fuzztime $(FUZZTIME) ./providers/linux/netdev
	$(GO) test -run '^$$' -fuzz '^FuzzHosts$$' -fuzztime $(FUZZTIME) ./providers/linux/netdev
	$(GO) test -run '^$$' -fuzz '^FuzzTypeCacheDecode$$' -fuzztime 20000x -fuzzminimizetime 2s ./providers/plugin
	$(GO) test -run '^$$' -fuzz '^FuzzValid$$' -fuzztime $(FUZZTIME) ./providers/linux/ident
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 60000x -fuzzminimizetime 2s ./agent/gossip
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMeta$$' -fuzztime 60000x -fuzzminimizetime 2s ./agent/gossip
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 60000x -fuzzminimizetime 2s ./agent/webhook
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime 60000x -fuzzminimizetime 2s ./agent/webhook
	$(GO) test -run '^$$' -fuzz '^FuzzParseAllowedSigners$$' -fuzztime 40000x -fuzzminimizetime 2s ./agent/gitsync
	$(GO) test -run '^$$' -fuzz '^FuzzParseRevision$$' -fuzztime 40000x -fuzzminimizetime 2s ./agent/gitsync
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyCommit$$' -fuzztime 40000x -fuzzminimizetime 2s ./agent/gitsync

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./reconciler

# Container start, no-op plan of 100 containers and shim memory, against
# runc and docker in the same run (as root; installs runc and docker.io).
bench-linux:
	bash bench/run

# berth's main job on an example, as root: build berth and a busybox image
# archive, apply examples/web (a web server in a container serving a named
# volume), fetch its page and list the containers. `make demo-destroy`
# removes it again.
DEMO_STATE ?= /tmp/berth-demo/state

demo: build
	examples/images/busybox.sh examples/web/busybox.tar
	bin/berth apply -auto-approve -state-dir $(DEMO_STATE) examples/web
	@for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O- http://127.0.0.1:18080/ && break; sleep 0.3; done
	bin/berth ps -state-dir $(DEMO_STATE)

demo-destroy: build
	bin/berth destroy -auto-approve -state-dir $(DEMO_STATE) examples/web

clean:
	rm -rf bin
