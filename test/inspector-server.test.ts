/**
 * The inspector's HTTP server answers only what it serves: the page and its data to GET (and HEAD, without the body)
 * on 127.0.0.1; a foreign Host 403, another method 405 naming the ones allowed, an unknown path 404, and a request
 * target that is no URL 400 (not a server error).
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

/**
 * Sends `request` (asking the server to close after it) and resolves everything the server sent, and whether it ended
 * the connection; a server that sends nothing more for `ms` is taken as not ending it (a liveness bound).
 */
const answerOf = (port: number, request: string, ms = 2_000): Promise<{ text: string; ended: boolean }> =>
  new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request))
    let text = ''
    let quiet = setTimeout(() => finish(false), ms)
    const finish = (ended: boolean) => {
      clearTimeout(quiet)
      socket.destroy()
      resolve({ text, ended })
    }
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1')
      clearTimeout(quiet)
      quiet = setTimeout(() => finish(false), ms)
    })
    socket.on('end', () => finish(true))
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
  expect(await statusOf(port, `HEAD / HTTP/1.1\r\n${host}\r\n`)).toBe('HTTP/1.1 200 OK')
  expect(await statusOf(port, `HEAD /nope HTTP/1.1\r\n${host}\r\n`)).toBe('HTTP/1.1 404 Not Found')
  expect(await statusOf(port, `GET /nope HTTP/1.1\r\n${host}\r\n`)).toBe('HTTP/1.1 404 Not Found')
  expect(await statusOf(port, `GET http://[ HTTP/1.1\r\n${host}\r\n`)).toBe('HTTP/1.1 400 Bad Request')
})

it('should answer HEAD as GET without a body, the event stream too, and name the methods it allows in a 405', async () => {
  hub = new InspectorHub()
  server = await startInspectorServer({ hub, port: 0 })
  const port = Number(new URL(server.url).port)
  const host = `Host: 127.0.0.1:${port}\r\nConnection: close\r\n`
  const get = await answerOf(port, `GET / HTTP/1.1\r\n${host}\r\n`)
  const head = await answerOf(port, `HEAD / HTTP/1.1\r\n${host}\r\n`)
  expect([get.ended, head.ended]).toEqual([true, true])
  const [getHeaders, getBody] = get.text.split('\r\n\r\n')
  const [headHeaders, headBody] = head.text.split('\r\n\r\n')
  expect(getBody!.length).toBeGreaterThan(0)
  expect(headBody).toBe('')
  expect(headHeaders!.split('\r\n')[0]).toBe('HTTP/1.1 200 OK')
  expect(getHeaders!.split('\r\n')[0]).toBe('HTTP/1.1 200 OK')
  expect(headHeaders).toMatch(/^content-type: text\/html/im)
  // The event stream: its headers, then the end (a GET stays open, streaming).
  const events = await answerOf(port, `HEAD /events HTTP/1.1\r\n${host}\r\n`)
  expect(events.ended).toBe(true)
  expect(events.text).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
  expect(events.text).toMatch(/^content-type: text\/event-stream/im)
  expect(events.text.split('\r\n\r\n')[1]).toBe('')
  const refused = await answerOf(port, `DELETE / HTTP/1.1\r\n${host}\r\n`)
  expect(refused.text).toMatch(/^HTTP\/1\.1 405 /)
  expect(refused.text).toMatch(/^allow: GET, HEAD$/im)
})
