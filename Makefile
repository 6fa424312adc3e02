# gigaflask: the two commands users need are `make demo` and `make test`.
SHELL := /bin/bash
VENV_BIN := $(CURDIR)/.venv/bin
export PATH := $(VENV_BIN):$(PATH)

.PHONY: help setup lock engine images lint test test-all demo demo-clean bench audit

help:
	@echo "make demo        deploy the whole stack to a local Ubuntu 20.04 container over SSH (DISTRO=jammy|noble)"
	@echo "make demo-clean  remove the demo container"
	@echo "make test        lint + every scenario on 20.04 and the full stack on 22.04 and 24.04, with a summary"
	@echo "make test-all    lint + every scenario on 20.04, 22.04 and 24.04"
	@echo "make lint        yamllint, ansible-lint (production) and the repository tests"
	@echo "make setup       create .venv with the locked toolchain (requirements.txt, hash-checked)"
	@echo "make lock        re-resolve requirements.in into requirements.txt (LOCK_ARGS=--upgrade: newest allowed)"
	@echo "make images      build the local test images (no registry needed)"
	@echo "make bench       measure speed against the floor and the tutorial -> bench/REPORT.md (about 35 min)"
	@echo "make audit       ssh-audit, testssl.sh, gixy, lynis on a converged server -> bench/AUDIT.md"

setup:
	@tools/setup

# requirements.in -> requirements.txt (tools/lock), then the venv to match it.
lock:
	@tools/lock $(LOCK_ARGS)
	@tools/setup

engine:
	@tools/engine
	@tools/apt-cache

images: engine
	@for distro in ubuntu2004 ubuntu2204 ubuntu2404; do \
	  molecule/images/build $$distro && molecule/images/build $$distro --flavor sshd || exit 1; done
	@molecule/images/build debian12

lint: setup
	yamllint --strict .
	ansible-lint
	python -m pytest tests -q

test:
	@tools/test

test-all:
	@tools/test --distro all

# From a fresh clone as root: venv, Docker engine, image, one droplet container, site.yml over SSH.
demo:
	@DISTRO=$(DISTRO) tools/demo

demo-clean:
	@tools/demo clean

# Benchmarks and audits (bench/README.md). Not tests: `make test` runs their smoke form.
bench: setup images
	@tools/host-packages
	python bench/bench.py

audit: setup images
	@tools/host-packages
	python bench/audit.py
