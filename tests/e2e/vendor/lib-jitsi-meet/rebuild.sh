#!/usr/bin/env bash
# Rebuilds lib-jitsi-meet.min.js and lib-jitsi-meet.e2ee-worker.js in this
# folder from snapshots of the two repositories (see SOURCE.md). Not run by CI.
#
#   rebuild.sh LIB_JITSI_MEET STROPHEJS [OUT_DIR]
#
# LIB_JITSI_MEET: a git repository (clone or bare mirror) of
#   jitsi/lib-jitsi-meet holding commit 01daa07c3f8c;
# STROPHEJS: a git repository of jitsi/strophejs (Jitsi's fork) holding the
#   tag v1.5-jitsi-3;
# OUT_DIR: where the two files go (default: this folder).
# Needs git, node >= 18 and npm with the npm registry (lib-jitsi-meet's
# dependencies from its package-lock.json, and esbuild). Works in a scratch
# folder; the given repositories are only read.
set -euo pipefail

LJM_COMMIT=01daa07c3f8cea97722246704e36b9af38e30b0a
STROPHE_TAG=v1.5-jitsi-3
ESBUILD_VERSION=0.28.2

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 2 ]; then
    sed -n '2,16p' "$0" >&2
    exit 2
fi
ljm_repo=$1
strophe_repo=$2
out=${3:-$here}
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/ljm-rebuild.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "rebuild: lib-jitsi-meet ${LJM_COMMIT:0:12}, strophe.js $STROPHE_TAG, in $work"
mkdir "$work/ljm-src" "$work/strophe-src" "$work/tools"
git -C "$ljm_repo" archive --format=tar "$LJM_COMMIT" | tar -x -C "$work/ljm-src"
git -C "$strophe_repo" archive --format=tar "$STROPHE_TAG" | tar -x -C "$work/strophe-src"

cd "$work/ljm-src"
# The "strophe.js" dependency is a tarball on GitHub's release pages, which
# npm cannot fetch here: drop it from package.json and the lock file (the
# fork's source is aliased in by build.mjs), then install the rest exactly as
# locked. Dev dependencies (webpack, babel, karma...) are not needed.
node -e '
const fs = require("fs");
const pkg = JSON.parse(fs.readFileSync("package.json", "utf8"));
delete pkg.dependencies["strophe.js"];
fs.writeFileSync("package.json", JSON.stringify(pkg, null, 2) + "\n");
const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
delete lock.packages[""].dependencies["strophe.js"];
delete lock.packages["node_modules/strophe.js"];
fs.writeFileSync("package-lock.json", JSON.stringify(lock, null, 2) + "\n");
'
npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error
# Node's "events" module is imported by lib-jitsi-meet and @jitsi/js-utils;
# upstream's webpack build gets the browser copy from a dev dependency's tree:
# install that package alone, at the version the lock file names.
events_version=$(node -p 'require("./package-lock.json").packages["node_modules/events"].version')
npm install --no-save --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error "events@$events_version"
# What `npm run gen-version` writes: version.ts with the short commit hash.
LIB_JITSI_MEET_COMMIT_HASH=${LJM_COMMIT:0:8} node tools/gen-version.js

cd "$work/tools"
npm init -y >/dev/null
npm install --no-audit --no-fund --loglevel=error --save-exact "esbuild@$ESBUILD_VERSION"

node "$here/build.mjs" "$work/tools/node_modules/esbuild/lib/main.js" "$work/ljm-src" "$work/strophe-src" "$out"
# Source maps are not kept in the repository.
rm -f "$out/lib-jitsi-meet.min.js.map" "$out/lib-jitsi-meet.e2ee-worker.js.map"
sha256sum "$out/lib-jitsi-meet.min.js" "$out/lib-jitsi-meet.e2ee-worker.js"
