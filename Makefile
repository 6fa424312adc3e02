# gigaflask: the two commands users need are `make demo` and `make test`.
SHELL := /bin/bash
VENV_BIN := $(CURDIR)/.venv/bin
export PATH := $(VENV_BIN):$(PATH)

.PHONY: help setup lock engine images lint test demo demo-clean bench audit

help:
	@echo "make demo        deploy the whole stack to a local Ubuntu 20.04 container over SSH"
	@echo "make demo-clean  remove the demo container"
	@echo "make test        lint + every Molecule scenario, with a summary"
	@echo "make lint        yamllint, ansible-lint (production) and the repository tests"
	@echo "make setup       create .venv with the locked toolchain (requirements.txt, hash-checked)"
	@echo "make lock        re-resolve requirements.in into requirements.txt (LOCK_ARGS=--upgrade: newest allowed)"
	@echo "make images      build the local test images (no registry needed)"
	@echo "make bench       measure speed against the floor and the tutorial -> bench/REPORT.md (< 15 min)"
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
	@molecule/images/build ubuntu2004
	@molecule/images/build ubuntu2004 --flavor sshd
	@molecule/images/build debian12

lint: setup
	yamllint --strict .
	ansible-lint
	python -m pytest tests -q

test:
	@tools/test

# From a fresh clone as root: venv, Docker engine, image, one droplet container, site.yml over SSH.
demo:
	@tools/demo

demo-clean:
	@tools/demo clean

# Benchmarks and audits (bench/README.md). Not tests: `make test` runs their smoke form.
bench: setup images
	@tools/host-packages
	python bench/bench.py

audit: setup images
	@tools/host-packages
	python bench/audit.py
