/**
 * Catalog schema as an ordered list of migrations. The catalog's `PRAGMA user_version` is
 * the number of migrations applied; migration i (1-based) moves user_version from i-1 to i
 * inside one transaction. Append new migrations at the end; never edit a shipped one.
 * A catalog whose user_version is above MIGRATIONS.length was written by a newer Holdfast.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: devices, volumes, extents, backups, settings
  `
  CREATE TABLE devices (
    id          INTEGER PRIMARY KEY,
    path        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('image', 'adopted-image', 'block')),
    size        INTEGER NOT NULL CHECK (size > 0),
    data_start  INTEGER NOT NULL CHECK (data_start >= 0),
    label_uuid  TEXT UNIQUE,
    added_at    TEXT NOT NULL
  );
  CREATE TABLE volumes (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    size        INTEGER NOT NULL CHECK (size > 0 AND size % 4096 = 0),
    ack_mode    TEXT NOT NULL CHECK (ack_mode IN ('journal', 'device')),
    adopted     INTEGER NOT NULL DEFAULT 0 CHECK (adopted IN (0, 1)),
    created_at  TEXT NOT NULL
  );
  CREATE TABLE extents (
    volume_id     INTEGER NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
    volume_offset INTEGER NOT NULL CHECK (volume_offset >= 0 AND volume_offset % 4096 = 0),
    device_id     INTEGER NOT NULL REFERENCES devices(id) ON DELETE RESTRICT,
    device_offset INTEGER NOT NULL CHECK (device_offset >= 0 AND device_offset % 4096 = 0),
    length        INTEGER NOT NULL CHECK (length > 0 AND length % 4096 = 0),
    PRIMARY KEY (volume_id, volume_offset)
  ) WITHOUT ROWID;
  CREATE INDEX extents_by_device ON extents(device_id, device_offset);
  CREATE TABLE backups (
    id          TEXT PRIMARY KEY,
    volume_id   INTEGER,
    volume_name TEXT NOT NULL,
    policy      TEXT NOT NULL,
    vault       TEXT NOT NULL,
    state       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    bytes_done  INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    snapshot_id TEXT,
    error       TEXT
  );
  CREATE INDEX backups_by_start ON backups(started_at);
  CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  // 2: schedules (issue 6). A volume schedule follows its volume by id (renames keep it; deleting
  // the volume deletes its schedules); a drive schedule names the drive's path. Frequency is
  // three columns (every, minute of the hour or of the day, weekday) so SQLite checks its shape.
  `
  CREATE TABLE schedules (
    id            INTEGER PRIMARY KEY,
    target_kind   TEXT NOT NULL CHECK (target_kind IN ('volume', 'drive')),
    volume_id     INTEGER REFERENCES volumes(id) ON DELETE CASCADE,
    drive         TEXT,
    every         TEXT CHECK (every IN ('hour', 'day', 'week')),
    at_minute     INTEGER CHECK (at_minute BETWEEN 0 AND 1439),
    weekday       INTEGER CHECK (weekday BETWEEN 0 AND 6),
    on_plug_in    INTEGER NOT NULL DEFAULT 0 CHECK (on_plug_in IN (0, 1)),
    vault         TEXT NOT NULL,
    policy        TEXT NOT NULL CHECK (policy IN ('volume', 'range', 'metadata')),
    keep_last     INTEGER CHECK (keep_last >= 0),
    keep_daily    INTEGER CHECK (keep_daily >= 0),
    keep_weekly   INTEGER CHECK (keep_weekly >= 0),
    keep_monthly  INTEGER CHECK (keep_monthly >= 0),
    enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at    TEXT NOT NULL,
    next_due_at   TEXT,
    last_run      TEXT,
    CHECK ((target_kind = 'volume') = (volume_id IS NOT NULL AND drive IS NULL)),
    CHECK ((target_kind = 'drive') = (drive IS NOT NULL AND volume_id IS NULL)),
    CHECK (every IS NOT NULL OR on_plug_in = 1),
    CHECK ((every IS NULL) = (at_minute IS NULL)),
    CHECK ((every = 'week') = (weekday IS NOT NULL))
  );
  CREATE INDEX schedules_by_volume ON schedules(volume_id);
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;
