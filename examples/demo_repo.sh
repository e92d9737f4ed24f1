#!/bin/sh
# Make a throw-away git repository from the examples, as a team would keep them:
# specs under flujo/ with their cassettes. Used by `./dev demo` for `flujo bot local`.
set -eu
target=$1
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$target"
mkdir -p "$target/flujo"
cp "$here"/*.yaml "$target/flujo/"
cp -R "$here/cassettes" "$target/flujo/cassettes"
git -C "$target" init --quiet --initial-branch=main
git -C "$target" add --all
git -C "$target" -c user.name="Flujo demo" -c user.email=demo@example.com \
    commit --quiet --message "Pipelines, their tests and recorded model calls"
echo "$target"
