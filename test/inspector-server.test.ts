/**
 * The inspector's HTTP server answers only what it serves: the page and its data to GET on 127.0.0.1; a foreign Host
 * 403, another method 405, an unknown path 404, and a request target that is no URL 400 (not a server error).
 */
import { connect } from 'node:net'
import { afterEach, expect, it } from 'vitest'
import { InspectorHub } from '../src/inspector/hub.js'
import { startInspectorServer, type InspectorServer } from '../src/inspector/server.js'

let server: InspectorServer | undefined
let hub: InspectorHub | undefined
afterEach(async () => {
  await server?.close()
  hub?.close()
})

/** Sends `request` as raw bytes and resolves the status line of the answer. */
const statusOf = (port: number, request: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request))
    let text = ''
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1')
      if (text.includes('\r\n')) {
        resolve(text.slice(0, text.indexOf('\r\n')))
        socket.destroy()
      }
    })
    socket.on('error', reject)
  })

it('should answer 200, 403, 405, 404 and 400 as the request deserves', async () => {
  hub = new InspectorHub()
  server = await startInspectorServer({ hub, port: 0 })
  const port = Number(new URL(server.url).port)
  const host = `Host: 127.0.0.1:${port}\r\n`
  expect(await statusOf(port, `GET / HTTP/1.1\r\n${host}\r\n`)).toBe('HTTP/1.1 200 OK')
  expect(await statusOf(port, `GET /api/state HTTP/1.1\r\n${host}\r\n`)).toBe('HTTP/1.1 200 OK')
  expect(await statusOf(port, `GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n`)).toBe('HTTP/1.1 403 Forbidden')
  expect(await statusOf(port, `POST / HTTP/1.1\r\n${host}Content-Length: 0\r\n\r\n`)).toBe('HTTP/1.1 405 Method Not Allowed')
  expect(await statusOf(port, `GET /nope HTTP/1.1\r\n${host}\r\n`)).toBe('HTTP/1.1 404 Not Found')
  expect(await statusOf(port, `GET http://[ HTTP/1.1\r\n${host}\r\n`)).toBe('HTTP/1.1 400 Bad Request')
})
