#!/usr/bin/env bash
# Passes every test of the workspace on a fresh machine: installs what the tests need when it
# is missing (tshark, as root, from Debian), then checks formatting, lints and the API docs, and
# runs every test with external tools required (a test that needs tshark fails, not skips,
# without it), and the README's main job.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

need_tshark() {
    command -v tshark >/dev/null 2>&1 && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "tools/test.sh: tshark is missing and this is not root; install it (apt-get install tshark) and rerun" >&2
        exit 1
    fi
    say "installing tshark"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq tshark >/dev/null
}

need_tshark

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo doc (broken links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked -q

say "cargo test"
SHADOWNET_REQUIRE_TOOLS=1 cargo test --workspace --locked

say "firmware images (freestanding: no_std, no_main, panic=abort)"
# Its own target directory: the image is built with other flags than the workspace.
image_target="${CARGO_TARGET_DIR:-$PWD/target}/firmware-image"
build_image() {
    (cd firmware-rs/image && CARGO_TARGET_DIR="$image_target" RUSTFLAGS="-D warnings" \
        cargo build --release --locked -q "$@")
}
build_image
(cd firmware-rs/image && CARGO_TARGET_DIR="$image_target" cargo clippy --release --locked -q -- -D warnings)
riscv=riscv32imac-unknown-none-elf
if rustup target list --installed 2>/dev/null | grep -qx "$riscv" \
    || rustup target add "$riscv" >/dev/null 2>&1; then
    # Installed: a failing build fails the run.
    build_image --target "$riscv"
    say "riscv image: $image_target/$riscv/release/shadownet-firmware-image"
else
    say "rustup cannot add $riscv (offline?): the riscv image is not built"
fi

say "the README's main job"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo run --release --locked -q -p shadowctl -- sim run --config examples/two-tier.toml \
    --pcap examples/two-tier-uplink.pcap --pcap web1=examples/two-tier-web1.pcap --out "$out" >/dev/null
test -s "$out/summary.json"

say "all tests passed"
