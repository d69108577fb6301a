#!/usr/bin/env bash
# One entry point for people and CI: installs into .venv on first use, then runs the command.
#   ./dev.sh serve [loyalty serve flags]   serve the bundled policies (127.0.0.1:50051)
#   ./dev.sh test [pytest args]            the whole test suite
#   ./dev.sh bench [--quick|--full]        the benchmarks with their ratio gates
#   ./dev.sh lint                          ruff
#   ./dev.sh loyalty ARGS                  any loyalty command
set -euo pipefail
cd "$(dirname "$0")"
VENV="${LOYALTY_VENV:-.venv}"
PY="$VENV/bin/python"

install() {
    if [ ! -x "$PY" ]; then
        python3 -m venv "$VENV"
    fi
    stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        "$PY" -m pip install --quiet --upgrade pip
        "$PY" -m pip install --quiet -e '.[dev]'
        touch "$stamp"
    fi
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
        exec "$PY" -m pytest "$@"
        ;;
    bench)
        install
        mode="${1:---quick}"
        shift || true
        exec "$PY" -m pytest benchmarks "$mode" "$@"
        ;;
    lint)
        install
        exec "$VENV/bin/ruff" check .
        ;;
    loyalty)
        install
        exec "$VENV/bin/loyalty" "$@"
        ;;
    *)
        sed -n '2,8p' "$0"
        exit 2
        ;;
esac
