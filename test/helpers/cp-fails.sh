#!/usr/bin/env bash
# A `cp` for PGDR_CP_BIN that fails part-way, like a filesystem that claims reflinks and then cannot clone:
# it copies PG_VERSION only and exits 1 with cp's message.
src="${*: -2:1}"
dst="${*: -1}"
mkdir -p "$dst" && cp "$src/PG_VERSION" "$dst/" 2>/dev/null
echo "cp: failed to clone '$dst/base/1/1259' from '$src/base/1/1259': Operation not supported" >&2
exit 1
