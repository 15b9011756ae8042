import { mkdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import type { Database, Statement } from 'better-sqlite3'
import type { ChangeOp, Instance } from '../../client-sdk/protocol.js'
import type { Change } from '../registry/change.js'
import type { LoadedState, RegistryStore } from '../registry/ports.js'
import type { PersistedInstance } from '../registry/record.js'
import { packageRoot } from '../paths.js'
import { migrate, readMigrations } from './migrations.js'

/** Options of {@link SqliteStore.open}, with their defaults. */
export interface SqliteStoreOptions {
  /**
   * `normal` (default): durable across a crash of the process (`kill -9`); a power loss may
   * lose the last transactions. `full`: fsync on every commit, durable across power loss;
   * group commit keeps it fast.
   */
  synchronous?: 'normal' | 'full'
  /** How many recent changes are kept for watch resume across a restart. Default 10,000. */
  changeRetention?: number
  /** The folder of NNN_name.sql files. Default: the package's migrations/. */
  migrationsDir?: string
  /**
   * Told of every committed batch: how long the transaction took and how many changes it
   * held (metrics). Must not throw.
   */
  onCommit?: (durationMs: number, changes: number) => void
}

interface Pending {
  change: Change
  instance: PersistedInstance | null
}

interface Batch {
  items: Pending[]
  promise: Promise<void>
  resolve: () => void
  reject: (err: unknown) => void
}

/**
 * The registry's store in one SQLite file, in WAL mode. Writes are group-committed: every
 * change appended during one turn of the event loop goes into one transaction, and all of
 * them are acknowledged together once it commits, so `synchronous=full` costs one fsync per
 * batch rather than per request.
 */
export class SqliteStore implements RegistryStore {
  readonly location: string
  readonly #db: Database
  readonly #retention: number
  readonly #upsert: Statement
  readonly #delete: Statement
  readonly #service: Statement
  readonly #change: Statement
  readonly #trim: Statement
  readonly #revision: Statement
  readonly #commitBatch: (items: Pending[]) => void
  readonly #onCommit: ((durationMs: number, changes: number) => void) | undefined
  #batch: Batch | undefined
  #closed = false

  private constructor(
    db: Database,
    location: string,
    retention: number,
    onCommit?: (durationMs: number, changes: number) => void,
  ) {
    this.#db = db
    this.#onCommit = onCommit
    this.location = location
    this.#retention = retention
    this.#upsert = db.prepare(
      'INSERT INTO instances (service, id, revision, data) VALUES (?, ?, ?, ?) ' +
        'ON CONFLICT (service, id) DO UPDATE SET revision = excluded.revision, data = excluded.data',
    )
    this.#delete = db.prepare('DELETE FROM instances WHERE service = ? AND id = ?')
    this.#service = db.prepare(
      'INSERT INTO services (name, revision) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET revision = excluded.revision',
    )
    this.#change = db.prepare('INSERT INTO changes (revision, frame) VALUES (?, ?)')
    this.#trim = db.prepare('DELETE FROM changes WHERE revision <= ?')
    this.#revision = db.prepare("UPDATE meta SET value = ? WHERE key = 'revision'")
    this.#commitBatch = db.transaction((items: Pending[]) => {
      let last = 0
      for (const { change, instance } of items) {
        if (instance === null) this.#delete.run(change.service, change.instance.id)
        else this.#upsert.run(change.service, instance.id, change.revision, JSON.stringify(instance))
        this.#service.run(change.service, change.revision)
        this.#change.run(change.revision, change.frame)
        last = change.revision
      }
      this.#revision.run(last)
      this.#trim.run(last - this.#retention)
    })
  }

  /**
   * Opens (creating it and its folder if needed) and migrates the database at `path`, or
   * an in-memory one for `:memory:`.
   */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    const location = path === ':memory:' ? path : resolve(path)
    if (location !== ':memory:') mkdirSync(dirname(location), { recursive: true })
    const db = new BetterSqlite3(location)
    try {
      db.pragma('journal_mode = WAL')
      db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`)
      db.pragma('busy_timeout = 5000')
      db.pragma('foreign_keys = ON')
      migrate(db, readMigrations(options.migrationsDir ?? join(packageRoot(), 'migrations')), location)
    } catch (err) {
      db.close()
      throw err
    }
    return new SqliteStore(db, location, options.changeRetention ?? 10_000, options.onCommit)
  }

  /**
   * The open database, for the stores of other concerns that share its file and its
   * migrations (API tokens: server/auth/token-store.ts). Closed by {@link close}.
   */
  get database(): Database {
    return this.#db
  }

  async load(recentChanges: number): Promise<LoadedState> {
    const db = this.#db
    const revision = (db.prepare("SELECT value FROM meta WHERE key = 'revision'").get() as { value: number }).value
    const rows = db.prepare('SELECT data FROM instances').raw()
    const instances = (function* () {
      for (const [data] of rows.iterate() as IterableIterator<[string]>) yield JSON.parse(data) as PersistedInstance
    })()
    const serviceRevisions = db.prepare('SELECT name, revision FROM services').raw().all() as Array<[string, number]>
    const changeRows = db
      .prepare('SELECT revision, frame FROM changes WHERE revision > ? ORDER BY revision')
      .raw()
      .all(revision - recentChanges) as Array<[number, string]>
    const changes = changeRows.map(([rev, frame]) => {
      const m = JSON.parse(frame) as { op: ChangeOp; service: string; instance: Instance }
      return { revision: rev, service: m.service, op: m.op, instance: m.instance, frame }
    })
    return { revision, instances, serviceRevisions, recentChanges: changes }
  }

  append(change: Change, instance: PersistedInstance | null): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('store is closed'))
    let batch = this.#batch
    if (batch === undefined) {
      let resolve!: () => void
      let reject!: (err: unknown) => void
      const promise = new Promise<void>((res, rej) => {
        resolve = res
        reject = rej
      })
      batch = { items: [], promise, resolve, reject }
      this.#batch = batch
      setImmediate(() => this.#flush())
    }
    batch.items.push({ change, instance })
    return batch.promise
  }

  /** Commits the open batch, if any, and settles its promise. */
  #flush(): void {
    const batch = this.#batch
    if (batch === undefined) return
    this.#batch = undefined
    const start = performance.now()
    try {
      this.#commitBatch(batch.items)
    } catch (err) {
      batch.reject(err)
      return
    }
    const ms = performance.now() - start
    batch.resolve()
    this.#onCommit?.(ms, batch.items.length)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#flush()
    this.#closed = true
    this.#db.close()
  }
}
