# One build profile (dev, dependencies optimized): see Cargo.toml.
CARGO ?= cargo
SEEDS ?= 2000

.PHONY: run build test sim fuzz bench chaos clean

## run: a local consortium of 4 banks on 127.0.0.1:7001-7004, data in ./data (Ctrl-C stops)
run: build
	./scripts/run-local.sh

build:
	$(CARGO) build -p node --bins

## test: every test of the workspace (unit, loopback end-to-end, simulator, snapshots, fuzz smoke)
test:
	$(CARGO) test --workspace --no-fail-fast

## sim: one simulated scenario (SCENARIO=scenarios/bank_crash.toml)
sim:
	$(CARGO) run -p sim -- $(or $(SCENARIO),scenarios/bank_crash.toml)

## fuzz: many random fault schedules (SEEDS=2000)
fuzz:
	$(CARGO) run -p sim -- fuzz --seeds $(SEEDS)

## bench: throughput and latency of 4 real banks on loopback at 1/4/16/64 clients (+ JSON)
bench: build
	./target/debug/bench --json bench.json

## chaos: kill -9 / restart / SIGSTOP banks for 60 s under load, then check every promise
chaos: build
	./target/debug/bench chaos --seconds $(or $(SECONDS),60)

clean:
	rm -rf data
