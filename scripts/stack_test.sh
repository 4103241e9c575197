#!/usr/bin/env bash
# Run the tests of one vehicle stack (make test-jazzy / test-floor) the way a vehicle installs the
# package: colcon builds this checkout into the stack's own workspace with the stack's Python, the
# workspace's local_setup.bash is sourced, and pytest imports the package, its launch files, configs
# and models from install/ (test/test_colcon_install.py checks that it does).
#
#   scripts/stack_test.sh STACK copy|symlink DOMAINS CLI_DOMAINS PYTEST_ARGS...
#
# STACK names .venv-STACK and build/STACK; copy is colcon's default install, symlink
# --symlink-install. DOMAINS and CLI_DOMAINS ("LO-HI") are the ROS domain ranges of this run's nodes
# (test/helpers/domains.py), apart from the other stacks make test runs beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
stack=$1 mode=$2 domains=$3 cli_domains=$4
shift 4
venv=.venv-$stack
ws=build/$stack/ws
case $mode in
  copy) flags=() ;;
  symlink) flags=(--symlink-install) ;;
  *) echo "stack_test: mode is copy or symlink, not '$mode'" >&2; exit 2 ;;
esac
[ -x "$venv/bin/colcon" ] || { echo "stack_test: $venv has no colcon: run make stack-$stack" >&2; exit 2; }
# A new install every run (about 2 s): a file removed from the tree must be gone from install/ too.
rm -rf "$ws/build" "$ws/install"
mkdir -p "$ws"
start=$(date +%s)
if ! "$venv/bin/colcon" --log-base "$ws/log" build --base-paths . --build-base "$ws/build" \
    --install-base "$ws/install" "${flags[@]}" >"$ws/colcon.log" 2>&1; then
  tail -40 "$ws/colcon.log"
  echo "stack_test: colcon build ($mode) failed for $stack; the log is $ws/colcon.log" >&2
  exit 1
fi
echo "stack_test: $stack: colcon build ($mode install) in $(($(date +%s) - start)) s"
set +u  # colcon's scripts read unset variables
# shellcheck disable=SC1091
source "$ws/install/local_setup.bash"
set -u
export BEVFUSION_INSTALL_BASE=$PWD/$ws/install BEVFUSION_INSTALL_MODE=$mode
export BEVFUSION_TEST_DOMAINS=$domains BEVFUSION_CLI_TEST_DOMAINS=$cli_domains
# The venv's pytest script, not `python -m pytest`: that would put the checkout first on sys.path and
# import the source tree instead of the install.
exec "$venv/bin/pytest" -p no:cacheprovider --junitxml="build/$stack/junit.xml" -o junit_suite_name="$stack" "$@"
