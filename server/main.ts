#!/usr/bin/env node
/**
 * The rollcall server's entry point (`npm start`, `node dist/server/main.js`): the same
 * server as `rollcall serve`, which owns configuration -> wiring -> listen -> signals.
 */
import { runServer } from './cli/serve.js'

await runServer(process.argv.slice(2))
