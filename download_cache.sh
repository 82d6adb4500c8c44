#!/usr/bin/env bash
# Fill the rep-theory cache of group tables and irreps (see the README's "The cache" section).
#
#   ./download_cache.sh                # the paper's groups: C113 C118 D59 D61 S5 S6 A5
#   ./download_cache.sh S7 Q8          # any specs
#
# Everything in the cache can be computed locally, and by default it is (`rep-theory cache build`,
# a few seconds for the paper's groups).  If REP_THEORY_CACHE_URL is set, a .tar.gz archive of a
# cache folder (holding v<FORMAT_VERSION>/<spec>.pt files) is first downloaded with curl and
# unpacked into the cache folder, but only if its sha256 equals REP_THEORY_CACHE_SHA256; otherwise
# the script warns and builds locally.  Either way `rep-theory cache build` then loads and verifies
# each requested group (every file also carries its own checksum), computing whatever is missing or bad.
#
# Environment:
#   REP_THEORY_CACHE         cache folder (default: utils/cache/ in a checkout, else ~/.cache/rep_theory)
#   REP_THEORY_CACHE_URL     optional archive to download first
#   REP_THEORY_CACHE_SHA256  its expected sha256 (required for the archive to be used)
#   REP_THEORY_CLI           command that runs rep-theory (default: rep-theory, else python3 -m rep_theory)
set -euo pipefail

if [ "$#" -gt 0 ]; then
    specs=("$@")
else
    specs=(C113 C118 D59 D61 S5 S6 A5)
fi

if [ -n "${REP_THEORY_CLI:-}" ]; then
    read -r -a cli <<< "$REP_THEORY_CLI"
elif command -v rep-theory > /dev/null 2>&1; then
    cli=(rep-theory)
else
    cli=(python3 -m rep_theory)
fi

warn() { echo "download_cache.sh: warning: $*" >&2; }

if [ -n "${REP_THEORY_CACHE_URL:-}" ]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    if [ -z "${REP_THEORY_CACHE_SHA256:-}" ]; then
        warn "REP_THEORY_CACHE_URL is set but REP_THEORY_CACHE_SHA256 is not; not downloading, building locally"
    elif ! curl -fsSL --retry 2 -o "$tmp/cache.tar.gz" "$REP_THEORY_CACHE_URL"; then
        warn "could not download $REP_THEORY_CACHE_URL; building locally"
    else
        actual="$(sha256sum "$tmp/cache.tar.gz" | cut -d' ' -f1)"
        expected="$(echo "$REP_THEORY_CACHE_SHA256" | tr 'A-F' 'a-f')"
        if [ "$actual" != "$expected" ]; then
            warn "sha256 of the downloaded archive is $actual, expected $expected; ignoring it, building locally"
        else
            dir="$("${cli[@]}" cache path)"
            mkdir -p "$tmp/unpacked" "$dir"
            # Unpack into a scratch folder first; only plain *.pt files under v<N>/ are copied over.
            tar -xzf "$tmp/cache.tar.gz" -C "$tmp/unpacked" --no-same-owner --no-same-permissions
            copied=0
            while IFS= read -r -d '' f; do
                rel="${f#"$tmp/unpacked/"}"            # v<N>/<spec>.pt
                mkdir -p "$dir/$(dirname "$rel")"
                cp "$f" "$dir/$rel.part" && mv "$dir/$rel.part" "$dir/$rel"
                copied=$((copied + 1))
            done < <(find "$tmp/unpacked" -mindepth 2 -maxdepth 2 -type f -path "$tmp/unpacked/v[0-9]*/*.pt" -print0)
            echo "download_cache.sh: unpacked $copied cache files into $dir"
        fi
    fi
fi

"${cli[@]}" cache build "${specs[@]}"
