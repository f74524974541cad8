# chunkwise — common tasks. `make test` is the test command CI runs.
GO        ?= go
PKGS      ?= ./...
BENCHTIME ?= 1s

.PHONY: all test test-short bench lint demo remote-demo fuzz torture clean

all: lint test

## test: every test, with the race detector. PostgreSQL tests use
## BATCH_TEST_POSTGRES_DSN (see README); without it they skip.
test:
	@$(GO) test -race -count=1 -timeout 20m $(PKGS); status=$$?; \
	if [ -z "$$BATCH_TEST_POSTGRES_DSN" ] && ! docker info >/dev/null 2>&1; then \
		echo "note: the PostgreSQL tests were skipped: BATCH_TEST_POSTGRES_DSN is not set and Docker is not reachable (see README)"; \
	fi; exit $$status

## test-short: the quick subset (no crash tests), without the race detector.
test-short:
	$(GO) test -short -count=1 $(PKGS)

## bench: the benchmarks; figures are recorded in docs/benchmarks.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

## lint: formatting, vet and staticcheck.
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)
	cd examples/csvimport/riverload && $(GO) vet ./... # BenchmarkRiver's other side, a module of its own

## demo: import the bundled sample CSV into a fresh SQLite file, then show the status.
demo:
	rm -f demo.db demo.db-wal demo.db-shm
	$(GO) run ./examples/csvimport -db demo.db run
	$(GO) run ./examples/csvimport -db demo.db status

## remote-demo: the partitioned example's job run by a manager and three
## worker processes through an embedded NATS server, on a fresh SQLite file;
## a worker is SIGKILLed 4 s in and another takes its partition over.
remote-demo:
	rm -f remote.db remote.db-wal remote.db-shm
	$(GO) run ./examples/remote -db remote.db -kill 4s

## torture: kill the CSV import with SIGKILL at 30 points over 300,000 rows,
## on SQLite and PostgreSQL, restarting it each time, and check every row is
## there exactly once; the same for the partitioned examples (a table in
## four key ranges, files one per partition); then the full crash sweeps of
## the chunk step and of the partitioned step (every commit, before and
## after COMMIT, once and twice; every bookkeeping write); and three serve
## processes firing a schedule every second for 30 s, each second once.
## make test runs a short version of each.
TORTURE_KILLS ?= 30
TORTURE_ROWS  ?= 300000
torture:
	TORTURE_KILLS=$(TORTURE_KILLS) TORTURE_ROWS=$(TORTURE_ROWS) $(GO) test -count=1 -timeout 30m -run 'TestTorture' -v ./examples/csvimport/
	TORTURE_KILLS=$(TORTURE_KILLS) TORTURE_ROWS=100000 $(GO) test -count=1 -timeout 30m -run 'TestTorture' -v ./examples/partitioned/
	TORTURE_KILLS=$(TORTURE_KILLS) TORTURE_LINES=20000 $(GO) test -count=1 -timeout 30m -run 'TestTorture' -v ./examples/partitionfile/
	BATCH_CRASH_SWEEP=full $(GO) test -count=1 -timeout 60m -parallel 8 -run 'Sweep' ./batch/
	SERVE_SECONDS=30 $(GO) test -count=1 -timeout 10m -run 'TestReplicas' -v ./examples/serve/

## fuzz: run each fuzz target for FUZZTIME inputs (default 200000x).
# A count, not a duration: with a duration, Go 1.26's fuzzing coordinator
# can report its own stop at the deadline as a failure, "context deadline
# exceeded", when its workers are slow to answer on a loaded machine
# (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 200000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzCSV$$' -fuzztime $(FUZZTIME) ./reader/
	$(GO) test -run '^$$' -fuzz '^FuzzFixedWidth$$' -fuzztime $(FUZZTIME) ./reader/
	$(GO) test -run '^$$' -fuzz '^FuzzJSONLines$$' -fuzztime $(FUZZTIME) ./reader/
	$(GO) test -run '^$$' -fuzz '^FuzzJSONArray$$' -fuzztime $(FUZZTIME) ./reader/
	$(GO) test -run '^$$' -fuzz FuzzParseParameter -fuzztime $(FUZZTIME) ./batch/

clean:
	rm -f demo.db demo.db-wal demo.db-shm batch.db batch.db-wal batch.db-shm remote.db remote.db-wal remote.db-shm
