#!/usr/bin/env bash
# Passes every test of the workspace on a fresh machine: installs what the tests need when it
# is missing (tshark, Suricata 7, rsyslog; as root, from Debian), then checks formatting, lints
# and the API docs, and runs every test with external tools required (a test that needs tshark
# fails, not skips, without it), and the README's main job (the daemon, driven through
# shadowctl).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

# need CMD PACKAGE WHY: installs Debian's PACKAGE (as root) when CMD is not on the PATH or
# in /usr/sbin.
need() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "tools/test.sh: $1 is missing and this is not root; install it (apt-get install $2) and rerun" >&2
        exit 1
    fi
    say "installing $2 ($3)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "$2" >/dev/null
}

need_suricata() {
    command -v suricata >/dev/null 2>&1 && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "tools/test.sh: suricata is missing and this is not root; install Suricata 7 (bookworm-backports) and rerun" >&2
        exit 1
    fi
    say "installing suricata 7 from bookworm-backports"
    export DEBIAN_FRONTEND=noninteractive
    # Suricata 7 is in backports only: add the suite to the existing Debian source entry.
    sources=/etc/apt/sources.list.d/debian.sources
    if [ -f "$sources" ] && ! grep -q 'bookworm-backports' "$sources"; then
        sed -i '/^Suites:.*bookworm-updates/ s/$/ bookworm-backports/' "$sources"
    fi
    apt-get update -qq
    apt-get install -y -qq -t bookworm-backports suricata >/dev/null
}

need tshark tshark "the decoding tests check our frames with it"
need_suricata
need rsyslogd rsyslog "the SIEM export tests send to it"

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

say "the README's main job: shadownetd on the simulated NIC, driven by shadowctl"
cargo build --release --locked -q -p shadownet-host -p shadowctl --bins
data=$(mktemp -d)
"${CARGO_TARGET_DIR:-target}/release/shadownetd" --listen 127.0.0.1:0 --data-dir "$data" 2>"$data/daemon.log" &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 200); do
    [ -s "$data/listen.addr" ] && break
    kill -0 "$daemon" 2>/dev/null || { cat "$data/daemon.log" >&2; exit 1; }
    sleep 0.05
done
export SHADOWNET_API="http://$(cat "$data/listen.addr")" SHADOWNET_TOKEN_FILE="$data/admin.token" SHADOWNET_TENANT=acme
ctl() { "${CARGO_TARGET_DIR:-target}/release/shadowctl" "$@"; }
ctl tenant create acme >/dev/null
ctl network create --file examples/api/shop.json >/dev/null
ctl shadow create --file examples/api/shop-shadow.json >/dev/null
ctl nic inject examples/two-tier-web1.pcap --port web1 --json | grep -q '"frames"'
ctl shadow complete shop-shadow | grep -q "0 left after read-back"
ctl nic drift --json >/dev/null
kill "$daemon"
wait "$daemon" 2>/dev/null || true

say "the offline simulator run"
out=$(mktemp -d)
cargo run --release --locked -q -p shadowctl -- sim run --config examples/two-tier.toml \
    --pcap examples/two-tier-uplink.pcap --pcap web1=examples/two-tier-web1.pcap --out "$out" >/dev/null
test -s "$out/summary.json"
rm -rf "$out"

say "all tests passed"
