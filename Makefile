# Two commands for a fresh Debian machine, as root: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

APT_PACKAGES := clang llvm libbpf-dev bpftool iproute2 iptables nftables openssh-server \
	util-linux iputils-ping netcat-openbsd procps kmod openssl ethtool qemu-system-x86 busybox-static
CLI := ./bin/run.js

help:
	@echo "make demo   - install what is missing, build, run Pinion end to end in a lab"
	@echo "make test   - install what is missing, build, type-check, lint and run every test (root)"
	@echo "make test-kernels - boot Debian's packaged kernels in qemu and run the datapath there"
	@echo "make build  - compile TypeScript and the BPF objects"
	@echo "make bench  - run the benchmarks under bench/"

# Installs only the Debian packages that are missing (apt-get update once, first).
deps:
	@missing=""; for pkg in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund

build: deps node_modules/.package-lock.json
	npm run build --silent

lint: node_modules/.package-lock.json
	npm run lint --silent

typecheck: node_modules/.package-lock.json
	npm run typecheck --silent

# Tests run in a private mount namespace with its own bpffs, so no pin, mount
# or lab namespace they make can outlive the run.
test: build typecheck lint
	unshare --mount --propagation private -- bash -c 'mount -t bpf bpf /sys/fs/bpf && exec npx vitest run'

# The kernel matrix alone (also part of `make test`): Debian's kernels in qemu, see test/kernels/kernels.txt.
test-kernels: build
	unshare --mount --propagation private -- bash -c 'mount -t bpf bpf /sys/fs/bpf && exec npx vitest run test/kernels'

demo: build
	./scripts/demo.sh

bench: build
	./bench/run.sh

readme: build
	npx oclif readme --no-aliases

clean:
	rm -rf dist

.PHONY: help deps build lint typecheck test test-kernels demo bench readme clean
