#!/usr/bin/env bash
# The two local images the Dockerfile's BASE and RUST arguments name when no registry can be
# reached (make image-test): a Debian bookworm made by debootstrap (minbase, with python3, its
# venv module and CA certificates), and this machine's stable Rust toolchain in the rust image's
# layout (/usr/local/cargo/bin, /usr/local/rustup). Both are cached: each is made once.
#   deploy/image/bases.sh CACHE_DIR   -> prints "BASE RUST" (the local image names)
set -euo pipefail
cache=${1:?usage: bases.sh CACHE_DIR}
mkdir -p "$cache"
bah=(buildah --storage-driver vfs)
base=localhost/inferd-base:bookworm
rust=localhost/inferd-rust:host

if ! "${bah[@]}" inspect --type image "$base" >/dev/null 2>&1; then
    if [ ! -f "$cache/rootfs/.complete" ]; then
        rm -rf "$cache/rootfs.tmp"
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$cache/rootfs.tmp" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
            || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
        rm -rf "$cache/rootfs.tmp"/var/cache/apt/archives/*.deb "$cache/rootfs.tmp"/var/lib/apt/lists/*
        rm -rf "$cache/rootfs" && mv "$cache/rootfs.tmp" "$cache/rootfs" && touch "$cache/rootfs/.complete"
    fi
    c=$("${bah[@]}" from scratch)
    "${bah[@]}" copy "$c" "$cache/rootfs/" / >/dev/null
    "${bah[@]}" run --isolation chroot "$c" -- rm -f /.complete
    # This machine's certificate authorities (an egress proxy's, here): pip and cargo in the
    # build reach PyPI and crates.io through it. PIP_CERT: pip's own bundle lacks them.
    "${bah[@]}" copy "$c" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
    "${bah[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt --cmd python3 "$c"
    "${bah[@]}" commit --quiet "$c" "$base" >/dev/null
    "${bah[@]}" rm "$c" >/dev/null
fi

if ! "${bah[@]}" inspect --type image "$rust" >/dev/null 2>&1; then
    home=${RUSTUP_HOME:-$HOME/.rustup}
    toolchain=$(ls -d "$home"/toolchains/stable-* 2>/dev/null | head -1)
    [ -n "$toolchain" ] || { echo "no stable Rust toolchain in $home/toolchains (rustup toolchain install stable)" >&2; exit 1; }
    tree="$cache/rust"
    name=$(basename "$toolchain")
    rm -rf "$tree" && mkdir -p "$tree/usr/local/rustup/toolchains/$name" "$tree/usr/local/cargo/bin"
    # bin and lib only: rustc, cargo, the standard library (share/ is documentation).
    cp -a "$toolchain/bin" "$toolchain/lib" "$tree/usr/local/rustup/toolchains/$name/"
    rm -rf "$tree/usr/local/rustup/toolchains/$name/lib/rustlib/src"
    for tool in cargo rustc; do
        ln -s "../../rustup/toolchains/$name/bin/$tool" "$tree/usr/local/cargo/bin/$tool"
    done
    # The crates this machine has already downloaded (crates.io still answers for the rest).
    [ -d "${CARGO_HOME:-$HOME/.cargo}/registry" ] && cp -a "${CARGO_HOME:-$HOME/.cargo}/registry" "$tree/usr/local/cargo/"
    c=$("${bah[@]}" from scratch)
    "${bah[@]}" copy "$c" "$tree/" / >/dev/null
    "${bah[@]}" commit --quiet "$c" "$rust" >/dev/null
    "${bah[@]}" rm "$c" >/dev/null
    rm -rf "$tree"
fi
echo "$base $rust"
