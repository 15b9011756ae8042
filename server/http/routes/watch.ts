import websocket from '@fastify/websocket'
import type { FastifyPluginAsync } from 'fastify'
import { RegistryError } from '../../registry/errors.js'
import type { WatchHub } from '../watch/watch-hub.js'
import type { AuthGate } from '../watch/watch-session.js'

/** Hard cap on a client frame: past it the socket closes with 1009. Under it, frames over
 * MAX_CLIENT_FRAME_BYTES get an error message and the connection stays. */
const MAX_PAYLOAD = 1024 * 1024

/**
 * GET /v1/watch: the WebSocket watch of DESIGN.md section 4. A `{ websocket: true }`-style
 * GET, so every onRequest hook (auth) runs before the upgrade; a plain GET gets a 400.
 */
export const watchRoutes: FastifyPluginAsync<{ hub: WatchHub; authGate?: AuthGate }> = async (app, { hub, authGate }) => {
  await app.register(websocket, {
    options: { maxPayload: MAX_PAYLOAD, perMessageDeflate: false },
    preClose(done) {
      hub.close()
      done()
    },
  })
  app.route({
    method: 'GET',
    url: '/v1/watch',
    handler: async () => {
      throw new RegistryError('VALIDATION_FAILED', 'upgrade: GET /v1/watch takes a WebSocket upgrade')
    },
    wsHandler: (socket, request) => {
      // The auth hooks set both (server/auth/http-auth.ts); with auth off, neither.
      const { tokenId, awaitsAuthFrame } = request as { tokenId?: string; awaitsAuthFrame?: boolean }
      hub.accept(socket, tokenId, awaitsAuthFrame === true ? authGate : undefined)
    },
  })
}
