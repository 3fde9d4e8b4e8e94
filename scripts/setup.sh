#!/usr/bin/env bash
# Install what one command needs on a fresh Debian machine; safe to run again (it skips what is there).
#
#   scripts/setup.sh demo    Festival and one voice, sox, curl, and .venv with the provider (make demo)
#   scripts/setup.sh test    all of it: a second voice, PostgreSQL, Redis, Chromium and its driver (make test)
#   scripts/setup.sh floor   .venv-floor: the oldest supported Airflow (FLOOR_AIRFLOW, default 3.1.8) with the
#                            provider installed from its built wheel and the fast suite's dependencies
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-test}

DEMO_PACKAGES=(festival festvox-us-slt-hts sox curl)
TEST_PACKAGES=("${DEMO_PACKAGES[@]}" festvox-kallpc16k postgresql redis-server chromium chromium-driver)
case "$target" in
  demo) DEB_PACKAGES=("${DEMO_PACKAGES[@]}") ;;
  test | floor) DEB_PACKAGES=("${TEST_PACKAGES[@]}") ;;
  *) echo "usage: scripts/setup.sh [demo|test|floor]" >&2; exit 2 ;;
esac

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> Installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

# uv installs the packages into the venvs (pip took minutes per venv); the venv's own pip puts uv, from PyPI, into
# the venv's bin/ first. uv reads no pip configuration: it resolves from PyPI alone, and --compile-bytecode writes
# the .pyc files that pip writes (with PYTHONDONTWRITEBYTECODE=1 every pytest worker would compile Airflow anew).
UV_VERSION=0.13.9
install_uv() { [ -x "$1/bin/uv" ] || "$1/bin/pip" install -q "uv==$UV_VERSION"; }
uv_install() {
  local venv=$1
  shift
  "$venv/bin/uv" pip install -q --compile-bytecode --python "$venv/bin/python" "$@"
}

if [ "$target" = floor ]; then
  FLOOR_AIRFLOW=${FLOOR_AIRFLOW:-3.1.8}
  venv=.venv-floor
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
  stamp=$venv/.installed-$( (cat pyproject.toml; git ls-files -s airflow_provider_brain 2>/dev/null; echo "$FLOOR_AIRFLOW") | sha1sum | cut -c1-12)
  if [ ! -f "$stamp" ]; then
    echo "==> Building the provider's wheel and installing it into $venv with Airflow $FLOOR_AIRFLOW"
    install_uv "$venv"
    rm -rf dist/floor
    "$venv/bin/uv" build -q --wheel --python "$venv/bin/python" --out-dir dist/floor .
    wheel=$(ls dist/floor/airflow_provider_brain-*.whl)
    # The fast suite's dependencies, without the deployment stage's (Celery, Redis, Selenium): the resolver picks
    # the providers that support this Airflow. cryptography below 51, as Airflow 3.1's constraints pin it: 3.1.8's
    # get_fernet sets an attribute on MultiFernet, which cryptography 51 no longer allows, so the first encryption in
    # each process (a deferring task's trigger arguments) fails there (README, Limits).
    uv_install "$venv" "apache-airflow==$FLOOR_AIRFLOW" "cryptography<51" "${wheel}[local]" \
      apache-airflow-providers-postgres apache-airflow-providers-sqlite apache-airflow-providers-duckdb \
      apache-airflow-providers-common-messaging apache-airflow-providers-openlineage \
      "apache-airflow-providers-amazon[aiobotocore]" "moto[server]>=5.0" "jiwer>=3.0" "pytest>=8" \
      "pytest-timeout>=2.3" "pytest-xdist>=3.6" "psutil>=5.9" "statsd>=3.3"
    rm -f "$venv"/.installed-*
    touch "$stamp"
  fi
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> Creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "==> Installing the provider and its test dependencies into .venv"
  install_uv .venv
  uv_install .venv -e ".[dev]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
