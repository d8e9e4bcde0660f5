# The two commands: `make run` and `make test`. Both set up what a fresh
# machine lacks first, and are safe to run again.

CARGO ?= cargo
GUEST_TARGET := wasm32-wasip2
# Every guest crate of the workspace (commands, and the hostile test guest).
GUESTS := $(shell sed -n 's/^name = "\(sandbot-guest-[a-z0-9_-]*\)"/\1/p' guests/*/Cargo.toml tests/guests/*/Cargo.toml)
# The commands alone: their unit tests run natively on the SDK's fake host.
COMMANDS := $(shell sed -n 's/^name = "\(sandbot-guest-[a-z0-9_-]*\)"/\1/p' guests/*/Cargo.toml)

.PHONY: run test build setup guests runtime bench fuzz lint clean

## Sets up, builds, and starts the bot (the local console without DISCORD_TOKEN).
run: build
	./target/release/sandbot run

## Sets up, builds, and runs every test. `cargo test` builds the binary
## itself, with the features the tests unify (a separate `cargo build`
## would compile serenity, candle and the rest a second time).
test: setup guests
	@./scripts/setup-tests.sh
	@./scripts/test-other-guests.sh
	$(CARGO) test --release -p sandbot -p sandbot-sdk -p sandbot-examples $(addprefix -p ,$(COMMANDS))

## Sets up and builds: target/release/sandbot and the guests where config/sandbot.toml points.
build: setup guests runtime

setup:
	@./scripts/setup.sh

## The Rust guests, then the Python and JavaScript ones (their tools come
## from PyPI and npm; see the script).
guests:
	$(CARGO) build --profile guest --target $(GUEST_TARGET) $(addprefix -p ,$(GUESTS))
	@./scripts/build-other-guests.sh

runtime:
	$(CARGO) build --release -p sandbot

## The Discord bench runs a plain serenity bot (examples/) beside sandbot.
bench: build
	$(CARGO) build --release -p sandbot --example plain_serenity_bot
	$(CARGO) bench -p sandbot

## The fuzz targets (property tests named `fuzz_*`: the console's input,
## the config loader, split_args, the training-file parsers, the audio
## decoders, attachment sizes, archives) with FUZZ_CASES cases each where
## they do not fix their own count; `make test` runs 256.
FUZZ_CASES ?= 50000
fuzz: setup
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release -p sandbot -p sandbot-sdk -p sandbot-examples --lib fuzz_

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -p sandbot -- -D warnings
	$(CARGO) clippy --profile guest --target $(GUEST_TARGET) $(addprefix -p ,$(GUESTS)) -p sandbot-sdk -- -D warnings
	$(CARGO) clippy --release --all-targets -p sandbot-sdk $(addprefix -p ,$(COMMANDS)) -- -D warnings

clean:
	$(CARGO) clean
