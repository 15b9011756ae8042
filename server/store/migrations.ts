import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Database } from 'better-sqlite3'

/** One numbered SQL file of `migrations/`. */
export interface Migration {
  version: number
  name: string
  sql: string
}

const FILE = /^(\d{3})_([a-z0-9_]+)\.sql$/

/** Reads `NNN_name.sql` files in order; numbers must run 1, 2, 3... with no gap or twin. */
export function readMigrations(dir: string): Migration[] {
  const migrations: Migration[] = []
  for (const file of readdirSync(dir).sort()) {
    const m = FILE.exec(file)
    if (m === null) continue
    migrations.push({ version: Number(m[1]), name: m[2] as string, sql: readFileSync(join(dir, file), 'utf8') })
  }
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migrations: expected version ${i + 1}, found ${m.version}_${m.name}.sql`)
  })
  return migrations
}

/** Raised when the database was written by a newer rollcall than this one. */
export class SchemaTooNewError extends Error {
  constructor(found: number, known: number, path: string) {
    super(
      `database ${path} has schema version ${found}, newer than this rollcall knows (${known}): ` +
        `run a rollcall at least as new as the one that wrote it`,
    )
    this.name = 'SchemaTooNewError'
  }
}

/**
 * Applies every migration not yet recorded, each in its own transaction with its record,
 * so a crash leaves the database at a whole version. Refuses a database that is newer.
 * Returns the versions applied.
 */
export function migrate(db: Database, migrations: Migration[], path: string): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`)
  const version = db.prepare('SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations')
  const currentVersion = () => (version.get() as { v: number }).v
  const known = migrations.length
  const current = currentVersion()
  if (current > known) throw new SchemaTooNewError(current, known, path)
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
  const applied: number[] = []
  for (const m of migrations) {
    if (m.version <= current) continue
    // BEGIN IMMEDIATE takes the write lock before the version is read again: two processes
    // opening a fresh file at once apply each migration once, the second finding it done.
    const done = db
      .transaction(() => {
        if (currentVersion() >= m.version) return false
        db.exec(m.sql)
        record.run(m.version, m.name, new Date().toISOString())
        return true
      })
      .immediate()
    if (done) applied.push(m.version)
  }
  return applied
}
