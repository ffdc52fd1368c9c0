#!/usr/bin/env bash
# make image: the agent's OCI image from Debian packages and the built project, without any registry.
#
#   layer 1: a Debian root filesystem made by mmdebstrap (nodejs, iproute2, nftables, iptables, ipset,
#            conntrack and their dependencies; no apt, no docs), cached in .cache/image/
#   layer 2: /app = bin/, dist/ (make build), docs/ (error hints name its pages), package.json and
#            the production node_modules (`npm ci --omit=dev` in a staging directory, cached by
#            package-lock.json)
#
# Output: dist/symroute-image.tar, an OCI image layout in a tar (podman/skopeo `oci-archive:`) that
# also carries docker's manifest.json (`docker load`), and dist/symroute-image.packages (every Debian
# package and version inside: the snapshot the image was built from).
# Timestamps come from SOURCE_DATE_EPOCH (default: the last commit), so two builds from the same
# cache are byte-identical. Run as root (mmdebstrap needs it to make device nodes and owners).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

name=${IMAGE_NAME:-ghcr.io/symroute/symroute}
tag=${IMAGE_TAG:-$(node -p 'require("./package.json").version')}
suite=${IMAGE_SUITE:-trixie}
mirror=${IMAGE_MIRROR:-http://deb.debian.org/debian}
packages=nodejs,iproute2,nftables,iptables,ipset,conntrack
out=${IMAGE_OUT:-dist/symroute-image.tar}
cache=.cache/image
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

[ -f dist/cli/main.js ] || { echo "make image: dist/ is missing; run make build first" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "make image: needs root (mmdebstrap makes device nodes and owners)" >&2; exit 1; }
for tool in mmdebstrap tar gzip sha256sum; do
  command -v "$tool" >/dev/null || { echo "make image: $tool is missing (apt-get install mmdebstrap)" >&2; exit 1; }
done
mkdir -p "$cache" "$(dirname "$out")"
work=$(mktemp -d "${TMPDIR:-/tmp}/symroute-image.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Deterministic tar: sorted, fixed owners and times, no atime/ctime, gzip without name or time.
det_tar() { # det_tar DIR OUT.tar.gz  (the contents of DIR, relative)
  tar --create --directory "$1" --sort=name --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner . |
    gzip -n >"$2"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- layer 1: the Debian root filesystem (cached; its key is everything that shapes it) ---
base_key=$(printf '%s\n' "$suite" "$mirror" "$packages" "$(sha "$0")" | sha256sum | cut -c1-16)
base="$cache/base-$base_key"
if [ ! -f "$base.tar.gz" ]; then
  echo "image: building the $suite root filesystem with mmdebstrap (once; cached in $cache)"
  rm -f "$cache"/base-*
  mmdebstrap --quiet --variant=essential --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='chroot "$1" dpkg-query -W -f "\${Package} \${Version} \${Architecture}\n" > "$1/etc/symroute-image.packages"' \
    --customize-hook='sed -n "s/^Date: //p" "$1"/var/lib/apt/lists/*_InRelease | sort | tail -n 1 > "$1/etc/symroute-image.archive-date"' \
    --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/log/* "$1"/var/lib/apt/lists/*' \
    "$suite" "$work/rootfs.tar" "$mirror"
  mkdir "$work/rootfs"
  tar --extract --numeric-owner --same-permissions --directory "$work/rootfs" --file "$work/rootfs.tar"
  # The archive's state it was made from: its Release date (a snapshot.debian.org timestamp), and
  # every package's version. That date is also every file's time in this layer, so that the same
  # archive state gives the same layer whenever and wherever it is built.
  archive_date=$(cat "$work/rootfs/etc/symroute-image.archive-date")
  base_epoch=$(date -u -d "$archive_date" +%s)
  { echo "# Debian $suite from $mirror, Release of $archive_date"; cat "$work/rootfs/etc/symroute-image.packages"; } >"$base.packages"
  SOURCE_DATE_EPOCH=$base_epoch det_tar "$work/rootfs" "$work/base.tar.gz"
  gzip -dc "$work/base.tar.gz" | sha256sum | cut -d' ' -f1 >"$work/base.diffid"
  mv "$work/base.diffid" "$base.diffid"
  mv "$work/base.tar.gz" "$base.tar.gz"
  rm -rf "$work/rootfs" "$work/rootfs.tar"
fi

# --- layer 2: the application ---
deps_key=$(cat package.json package-lock.json | sha256sum | cut -c1-16)
deps="$cache/node_modules-$deps_key"
if [ ! -d "$deps/node_modules" ]; then
  echo "image: npm ci --omit=dev (once per package-lock.json; cached in $cache)"
  rm -rf "$cache"/node_modules-*
  mkdir -p "$deps.tmp"
  cp package.json package-lock.json "$deps.tmp/"
  (cd "$deps.tmp" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  mv "$deps.tmp" "$deps"
fi
app="$work/app-root"
mkdir -p "$app/app" "$app/etc/symroute"
cp -r bin dist docs package.json "$app/app/"
rm -f "$app/app/dist/$(basename "${out%.tar}")".* # an earlier image is not part of the next one
cp -r "$deps/node_modules" "$app/app/"
cp deploy/symroute.example.yaml "$app/etc/symroute/config.yaml"
# `kubectl exec ... -- symroute plan` finds it on PATH (docs/kubernetes.md), as on a host.
mkdir -p "$app/usr/local/bin"
ln -s /app/bin/symroute "$app/usr/local/bin/symroute"
# Nothing in /app is writable at run time (the root filesystem is read-only anyway).
chmod -R u=rwX,go=rX "$app"
det_tar "$app" "$work/app.tar.gz"
app_diffid=$(gzip -dc "$work/app.tar.gz" | sha256sum | cut -d' ' -f1)

# --- the OCI layout ---
layout="$work/layout"
mkdir -p "$layout/blobs/sha256"
base_digest=$(sha "$base.tar.gz")
app_digest=$(sha "$work/app.tar.gz")
cp "$base.tar.gz" "$layout/blobs/sha256/$base_digest"
mv "$work/app.tar.gz" "$layout/blobs/sha256/$app_digest"
blob() { # blob FILE -> digest (moves FILE into the layout)
  local d
  d=$(sha "$1")
  mv "$1" "$layout/blobs/sha256/$d"
  echo "$d"
}
size() { stat -c %s "$layout/blobs/sha256/$1"; }

node - "$work/config.json" "$created" "$(cat "$base.diffid")" "$app_diffid" "$name:$tag" <<'EOF'
const [file, created, baseDiff, appDiff, ref] = process.argv.slice(2);
const config = {
  created,
  architecture: "amd64",
  os: "linux",
  config: {
    Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NODE_ENV=production"],
    Entrypoint: ["node", "--lite-mode", "--max-semi-space-size=1", "--no-expose-wasm", "/app/bin/symroute"],
    Cmd: ["agent", "--config", "/etc/symroute/config.yaml"],
    WorkingDir: "/app",
    Labels: { "org.opencontainers.image.title": "symroute", "org.opencontainers.image.ref.name": ref },
  },
  rootfs: { type: "layers", diff_ids: [`sha256:${baseDiff}`, `sha256:${appDiff}`] },
  history: [
    { created, created_by: "mmdebstrap (scripts/image/build.sh): Debian with nodejs, iproute2, nftables, iptables, ipset, conntrack" },
    { created, created_by: "scripts/image/build.sh: /app (bin, dist, docs, production node_modules)" },
  ],
};
require("node:fs").writeFileSync(file, JSON.stringify(config));
EOF
config_digest=$(blob "$work/config.json")

node - "$work/manifest.json" "$config_digest" "$(size "$config_digest")" "$base_digest" "$(size "$base_digest")" \
  "$app_digest" "$(size "$app_digest")" <<'EOF'
const [file, cd, cs, bd, bs, ad, as] = process.argv.slice(2);
const layer = (d, s) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: `sha256:${d}`, size: Number(s) });
require("node:fs").writeFileSync(file, JSON.stringify({
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${cd}`, size: Number(cs) },
  layers: [layer(bd, bs), layer(ad, as)],
}));
EOF
manifest_digest=$(blob "$work/manifest.json")

node - "$layout" "$manifest_digest" "$(size "$manifest_digest")" "$name" "$tag" "$config_digest" "$base_digest" "$app_digest" <<'EOF'
const [dir, md, ms, name, tag, cd, bd, ad] = process.argv.slice(2);
const fs = require("node:fs");
fs.writeFileSync(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
fs.writeFileSync(`${dir}/index.json`, JSON.stringify({
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.index.v1+json",
  manifests: [{
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: `sha256:${md}`,
    size: Number(ms),
    // podman and skopeo read the first annotation, containerd and docker (25+) the second.
    annotations: { "org.opencontainers.image.ref.name": tag, "io.containerd.image.name": `${name}:${tag}` },
  }],
}));
// docker load (before 25) reads docker's own manifest.json; the blobs are shared.
fs.writeFileSync(`${dir}/manifest.json`, JSON.stringify([{
  Config: `blobs/sha256/${cd}`,
  RepoTags: [`${name}:${tag}`],
  Layers: [`blobs/sha256/${bd}`, `blobs/sha256/${ad}`],
}]));
EOF

tar --create --directory "$layout" --sort=name --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner --file "$out.tmp" .
mv "$out.tmp" "$out"
cp "$base.packages" "${out%.tar}.packages"
echo "image: $out  $name:$tag  $(du -m "$out" | cut -f1) MB  manifest sha256:$manifest_digest"
