#!/bin/sh
# /opt/testimony/backup.sh: one database dump, taken as the owner role, kept with its
# SHA-256. The dump holds sealed items and their metadata only (see docs/format.md); the
# recovery key that opens them is kept offline and never with the dumps.
set -eu
umask 077
dest=${1:-/var/backups/testimony}
day=$(date -u +%Y-%m-%d)
mkdir -p "$dest"
# TESTIMONY_DATABASE_URL without the "+psycopg" driver part, for libpq's tools.
url=$(printf '%s' "$TESTIMONY_DATABASE_URL" | sed 's/^postgresql+psycopg:/postgresql:/')
pg_dump --format=custom --no-owner --file="$dest/testimony-$day.dump" "$url"
sha256sum "$dest/testimony-$day.dump" > "$dest/testimony-$day.dump.sha256"
# Keep 30 days here; copy each dump off the host (restic, rsync to another site...).
find "$dest" -name 'testimony-*.dump*' -mtime +30 -delete
