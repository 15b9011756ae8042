/** What `onX(listener)` returns: call `dispose()` to stop listening. */
export interface Disposable {
  dispose(): void
}

/**
 * A typed list of listeners. A listener that throws cannot break the emitter or the other
 * listeners: its error is rethrown on `setImmediate`, as etcd3 does with user handlers.
 */
export class Emitter<T> {
  #listeners: Array<(value: T) => void> = []

  get size(): number {
    return this.#listeners.length
  }

  on(listener: (value: T) => void): Disposable {
    this.#listeners = [...this.#listeners, listener]
    return {
      dispose: () => {
        this.#listeners = this.#listeners.filter((l) => l !== listener)
      },
    }
  }

  emit(value: T): void {
    // The array is replaced, never mutated, on (un)subscribe: iterating it is safe.
    const listeners = this.#listeners
    for (let i = 0; i < listeners.length; i++) {
      try {
        ;(listeners[i] as (value: T) => void)(value)
      } catch (err) {
        setImmediate(() => {
          throw err
        })
      }
    }
  }
}
