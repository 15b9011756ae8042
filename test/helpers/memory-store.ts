import type { Change } from '../../server/registry/change.js'
import type { LoadedState, RegistryStore } from '../../server/registry/ports.js'
import type { PersistedInstance } from '../../server/registry/record.js'

/**
 * A {@link RegistryStore} in memory, for unit tests of the core. It keeps what a real
 * store keeps (instances, the global revision, service revisions, recent changes), copied
 * so that later changes to the registry's own objects cannot leak into it, and so a second
 * `Registry.open` on the same store is a restart.
 *
 * Appends resolve on a microtask, in order. Tests can make appends fail ({@link failWith})
 * or hold them back until released ({@link hold}), to see what the registry does while a
 * change is not yet durable.
 */
export class MemoryStore implements RegistryStore {
  readonly location = 'memory'
  revision = 0
  readonly instances = new Map<string, PersistedInstance>()
  readonly serviceRevisions = new Map<string, number>()
  readonly changes: Change[] = []
  /** Every append, in call order: what the registry handed over. */
  readonly appended: Array<{ revision: number; op: string; service: string; id: string }> = []
  closed = false
  #failure: Error | undefined
  #held: Array<() => void> | undefined

  /** Makes every later append reject with `err`, as a full disk would. */
  failWith(err: Error = new Error('disk full')): void {
    this.#failure = err
  }

  /** Holds appends back (they stay pending) until {@link release}. */
  hold(): void {
    this.#held ??= []
  }

  /** Lets every held append through, in order, and stops holding. */
  release(): void {
    const held = this.#held ?? []
    this.#held = undefined
    for (const go of held) go()
  }

  /** How many appends are held back. */
  get pending(): number {
    return this.#held?.length ?? 0
  }

  async load(recentChanges: number): Promise<LoadedState> {
    return {
      revision: this.revision,
      instances: [...this.instances.values()].map((p) => structuredClone(p)),
      serviceRevisions: [...this.serviceRevisions],
      recentChanges: this.changes.slice(-recentChanges),
    }
  }

  append(change: Change, instance: PersistedInstance | null): Promise<void> {
    this.appended.push({ revision: change.revision, op: change.op, service: change.service, id: change.instance.id })
    if (this.closed) return Promise.reject(new Error('store is closed'))
    const failure = this.#failure
    const write = (): void => {
      if (failure !== undefined) throw failure
      const key = `${change.service}/${change.instance.id}`
      if (instance === null) this.instances.delete(key)
      else this.instances.set(key, structuredClone(instance))
      this.serviceRevisions.set(change.service, change.revision)
      this.revision = change.revision
      this.changes.push(change)
    }
    if (this.#held !== undefined) {
      const held = this.#held
      return new Promise<void>((resolve, reject) => {
        held.push(() => {
          try {
            write()
            resolve()
          } catch (err) {
            reject(err)
          }
        })
      })
    }
    return Promise.resolve().then(write)
  }

  async close(): Promise<void> {
    this.closed = true
  }
}
