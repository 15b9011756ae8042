import type { RegisterInput } from '../../client-sdk/protocol.js'
import { RegisterBody } from '../../client-sdk/protocol.js'
import type { Change } from '../../server/registry/change.js'
import { ManualClock } from '../../server/registry/clock.js'
import type { RegistryOptions } from '../../server/registry/registry.js'
import { Registry } from '../../server/registry/registry.js'
import { MemoryStore } from './memory-store.js'

/** A registry on a {@link MemoryStore} and a {@link ManualClock}, with every change it published. */
export interface CoreFixture {
  registry: Registry
  store: MemoryStore
  clock: ManualClock
  /** Every change published to `onChange`, in order. */
  changes: Change[]
}

/** Opens a registry for a unit test. Pass `store`/`clock` to reopen on the same state (a restart). */
export async function openCore(options: Partial<RegistryOptions> & { store?: MemoryStore; clock?: ManualClock } = {}): Promise<CoreFixture> {
  const store = options.store ?? new MemoryStore()
  const clock = options.clock ?? new ManualClock()
  let n = 0
  const registry = await Registry.open({ newId: () => `gen-${++n}`, ...options, store, clock })
  const changes: Change[] = []
  registry.onChange((c) => changes.push(c))
  return { registry, store, clock, changes }
}

/** A parsed registration body, with the schema's defaults. */
export function body(input: Partial<RegisterInput> = {}): RegisterBody {
  return RegisterBody.parse({ host: '10.0.0.1', port: 8080, ...input })
}

/** Registers and waits until the change is durable. */
export async function registerNow(
  registry: Registry,
  service: string,
  id: string,
  input: Partial<RegisterInput> = {},
): Promise<void> {
  await registry.register(service, id, body(input)).committed
}
