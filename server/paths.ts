import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The folder holding rollcall's package.json, found by walking up from this module, so the
 * same code finds `migrations/` and `openapi.yaml` whether it runs from `dist/` or as
 * TypeScript source under the tests.
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'migrations'))) return dir
    const parent = dirname(dir)
    if (parent === dir) throw new Error('rollcall: cannot find the package root (no migrations/ folder)')
    dir = parent
  }
}
