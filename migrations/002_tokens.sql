-- API tokens. Only a SHA-256 digest of each secret is kept: the secrets are 32 random
-- bytes, too many to guess, so a slow hash (bcrypt) would add cost to every request and no
-- safety. Times are milliseconds since the epoch; revoked tokens stay, for the listing.
CREATE TABLE tokens (
  id          TEXT PRIMARY KEY,
  digest      BLOB NOT NULL UNIQUE,
  scopes      TEXT NOT NULL,
  description TEXT,
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER,
  revoked_at  INTEGER
) WITHOUT ROWID;
