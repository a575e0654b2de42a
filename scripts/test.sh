#!/usr/bin/env bash
# Installs what is missing, then runs every test: cargo (unit, corpus, golden and agent tests
# that start real JVMs) and the Gradle integration tests in java-harness/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

./scripts/setup.sh
export JAVA_HOME=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")}

echo "== cargo fmt / clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings

echo "== cargo build (release)"
cargo build --workspace --release

echo "== cargo test"
set +e
cargo test --workspace --release --no-fail-fast 2>&1 | tee target/cargo-test.log
cargo_status=${PIPESTATUS[0]}
set -e
cargo_failed=$(grep -E '^test result:' target/cargo-test.log | awk '{f += $6} END {print f + 0}')
cargo_passed=$(grep -E '^test result:' target/cargo-test.log | awk '{p += $4} END {print p + 0}')

echo "== gradle test (java-harness)"
rm -rf java-harness/build/test-results
gradle_status=0
(cd java-harness && gradle --offline -q test -Prepair.bin="$root/target/release") || gradle_status=$?
results=java-harness/build/test-results/test
gradle_passed=0
gradle_failed=0
for f in "$results"/TEST-*.xml; do
    [ -f "$f" ] || { gradle_failed=1; echo "gradle: no test results"; continue; }
    t=$(grep -o 'tests="[0-9]*"' "$f" | head -1 | tr -dc 0-9)
    s=$(grep -o 'skipped="[0-9]*"' "$f" | head -1 | tr -dc 0-9)
    x=$(grep -o 'failures="[0-9]*"' "$f" | head -1 | tr -dc 0-9)
    e=$(grep -o 'errors="[0-9]*"' "$f" | head -1 | tr -dc 0-9)
    gradle_passed=$((gradle_passed + t - s - x - e))
    gradle_failed=$((gradle_failed + x + e))
done
echo "cargo: $cargo_passed passed, $cargo_failed failed"
echo "gradle: $gradle_passed passed, $gradle_failed failed"
echo "$((cargo_passed + gradle_passed)) passed, $((cargo_failed + gradle_failed)) failed"
if ! grep -qE '^test result:' target/cargo-test.log; then
    echo "cargo test ran no test (build failure?)"
    exit 1
fi
[ "$cargo_status" -eq 0 ] && [ "$gradle_status" -eq 0 ] && [ "$cargo_failed" -eq 0 ] && [ "$gradle_failed" -eq 0 ]
