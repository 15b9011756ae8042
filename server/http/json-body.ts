import { RegistryError } from '../registry/errors.js'

/** Keys that could reach an object's prototype if a body were ever merged by assignment. */
const SUSPECT = /__proto__|constructor|\\u/

interface Frame {
  readonly value: unknown
  readonly key: string
  readonly parent: Frame | undefined
}

/**
 * Parses a JSON request body, or throws VALIDATION_FAILED that says why. As Fastify's
 * secure-json-parse does, a body holding a `__proto__` key or a `constructor.prototype`
 * is refused (prototype poisoning); unlike it, the message names the key's path
 * (`metadata.__proto__`) rather than calling valid JSON invalid.
 *
 * @example
 * ```ts
 * app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
 *   try { done(null, parseJsonBody(body as string)) } catch (err) { done(err as Error, undefined) }
 * })
 * ```
 */
export function parseJsonBody(text: string): unknown {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new RegistryError('VALIDATION_FAILED', `body: not valid JSON (${(err as Error).message})`)
  }
  // Most bodies hold neither key: only those that might (also behind \u escapes) are walked.
  if (!SUSPECT.test(text)) return value
  const poisoned = findPoisonedKey(value)
  if (poisoned !== undefined) {
    throw new RegistryError('VALIDATION_FAILED', `${poisoned}: key not allowed (prototype poisoning)`)
  }
  return value
}

/**
 * The path of the first `__proto__` or `constructor.prototype` key in `root`, or
 * undefined. Iterative, with parent links instead of copied paths, so a body nested
 * 30,000 deep costs neither the stack nor quadratic memory.
 */
function findPoisonedKey(root: unknown): string | undefined {
  const stack: Frame[] = [{ value: root, key: '', parent: undefined }]
  while (stack.length > 0) {
    const frame = stack.pop() as Frame
    const v = frame.value
    if (typeof v !== 'object' || v === null) continue
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) stack.push({ value: v[i], key: String(i), parent: frame })
      continue
    }
    for (const key of Object.keys(v)) {
      const child = (v as Record<string, unknown>)[key]
      if (key === '__proto__') return pathOf({ value: child, key, parent: frame })
      if (key === 'constructor' && typeof child === 'object' && child !== null && Object.hasOwn(child, 'prototype')) {
        return pathOf({ value: child, key: 'constructor.prototype', parent: frame })
      }
      stack.push({ value: child, key, parent: frame })
    }
  }
  return undefined
}

function pathOf(frame: Frame): string {
  const keys: string[] = []
  for (let f: Frame | undefined = frame; f !== undefined && f.parent !== undefined; f = f.parent) keys.push(f.key)
  return keys.reverse().join('.')
}
