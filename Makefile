# One build profile (dev, dependencies optimized): see Cargo.toml.
CARGO ?= cargo
SEEDS ?= 2000

.PHONY: run build release image docker-test test api-fuzz sim fuzz bench bench-target chaos availability soak clean

## run: a local consortium of 4 banks on 127.0.0.1:7001-7004, data in ./data (Ctrl-C stops)
run: build
	./scripts/run-local.sh

build:
	$(CARGO) build -p node -p bank-client -p tools --bins

## release: the optimized binaries an operator deploys (target/release/node, bank) and the bench
release:
	$(CARGO) build --release -p node -p bank-client -p tools --bins

## image: the container image (IMAGE=bank-consortium:latest): node and bank linked statically,
## copied into an empty image (no base image is pulled)
IMAGE ?= bank-consortium:latest
STATIC_TARGET ?= $(shell rustc -vV | sed -n 's/^host: //p')
image:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --target $(STATIC_TARGET) -p node -p bank-client --bin node --bin bank
	rm -rf target/image && mkdir -p target/image
	cp target/$(STATIC_TARGET)/release/node target/$(STATIC_TARGET)/release/bank docker/Dockerfile target/image/
	DOCKER_BUILDKIT=0 docker build -q -t $(IMAGE) target/image

## docker-test: the image, 4 banks in containers (docker-compose), money moved, a bank killed and restarted
docker-test:
	./scripts/docker-test.sh

## test: every test of the workspace (unit, loopback end-to-end, simulator, snapshots, fuzz smoke)
test:
	$(CARGO) test --workspace --no-fail-fast

## api-fuzz: a third-party API fuzzer (schemathesis, pinned, in a venv under target/api-fuzz) against
## 4 banks on loopback, driven by their GET /openapi.json: no 5xx, every answer as documented, every
## invalid request refused, no money moved (API_FUZZ_SECONDS=150, API_FUZZ_EXAMPLES=40, API_FUZZ_SEED=1)
api-fuzz: build
	./scripts/api-fuzz.sh

## sim: one simulated scenario (SCENARIO=scenarios/bank_crash.toml)
sim:
	$(CARGO) run -p sim -- $(or $(SCENARIO),scenarios/bank_crash.toml)

## fuzz: many random fault schedules (SEEDS=2000)
fuzz:
	$(CARGO) run -p sim -- fuzz --seeds $(SEEDS)

## bench: throughput and latency of 4 real banks on loopback: 1/4/16/64 clients, then 500 packages/s (+ JSON)
bench: release
	./target/release/bench $(BENCH_FLAGS) --json bench.json

## bench-target: the performance targets' measurement: cross-bank packages only, 100 accounts per bank,
## 64 clients and an open loop at 500/s, each run 3 times (medians at the end).
## BENCH_FLAGS=--tls: the banks over TLS, as in production (default: plain HTTP)
bench-target: release
	./target/release/bench $(BENCH_FLAGS) --load cross-bank --accounts 100 --clients 64 --rates 500 --repeat 3 --json bench-target.json

## chaos: kill -9 / restart / SIGSTOP banks and cut their links (proxies: isolate, lose replies, slow)
## for 60 s under load, then check every promise
chaos: build
	./target/debug/bench chaos --network $(BENCH_FLAGS) --seconds $(or $(SECONDS),60) --html chaos.html

## availability: 4 banks behind fault-injecting proxies; per fault kind (pause, isolate, lose-replies,
## slow, kill) 10 s fault-free, 10 s with one bank faulted, 5 s recovery, production timings (+ JSON)
availability: build
	./target/debug/bench availability --json availability.json $(AVAILABILITY_ARGS)

## soak: 2 banks under a steady cross-bank load for 5 minutes (SECONDS=...), sampling each bank's
## database size and resident memory: with compaction both level off (SOAK_FLAGS=--no-compact: without)
soak: release
	./target/release/bench soak --seconds $(or $(SECONDS),300) --json soak.json $(SOAK_FLAGS)

clean:
	rm -rf data
