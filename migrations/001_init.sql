-- The registry's durable state: instances, the global revision, every service's last
-- revision, and the recent changes that watchers resume from.
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO meta (key, value) VALUES ('revision', 0);

CREATE TABLE instances (
  service  TEXT NOT NULL,
  id       TEXT NOT NULL,
  revision INTEGER NOT NULL,
  data     TEXT NOT NULL,
  PRIMARY KEY (service, id)
) WITHOUT ROWID;

CREATE TABLE services (
  name     TEXT PRIMARY KEY,
  revision INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE changes (
  revision INTEGER PRIMARY KEY,
  frame    TEXT NOT NULL
);
