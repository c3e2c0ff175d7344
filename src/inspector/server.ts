/**
 * The inspector's web server: serves a page (plain HTML, CSS and JavaScript from ./static, nothing from the network)
 * that draws the live actor tree and each machine's statechart, updated over Server-Sent Events. It binds to
 * 127.0.0.1 only and answers only requests addressed to it by a loopback name (no DNS rebinding).
 *
 *   GET /                 the page
 *   GET /inspector.js     its script, /inspector.css its style
 *   GET /api/machines     every machine: name, title, XState JSON and the statechart as SVG
 *   GET /api/state        the index now (InspectorState) and the lifecycle events so far
 *   GET /events           Server-Sent Events: `state`, `lifecycle`, `transitions` (JSON data)
 */
import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { machineCatalog } from '../machines/catalog.js'
import { machineJson } from '../machines/json.js'
import { statechartSvg } from '../machines/svg.js'
import type { HubMessage, InspectorHub } from './hub.js'

export interface InspectorServerOptions {
  readonly hub: InspectorHub
  /** TCP port on 127.0.0.1; 0 picks a free one. */
  readonly port?: number
}

export interface InspectorServer {
  /** `http://127.0.0.1:<port>/`. */
  readonly url: string
  readonly port: number
  /** Ends every event stream and stops the server. */
  close(): Promise<void>
}

const staticFiles: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/inspector.js': { file: 'inspector.js', type: 'text/javascript; charset=utf-8' },
  '/inspector.css': { file: 'inspector.css', type: 'text/css; charset=utf-8' },
}

/** The machines, as the page needs them (computed once: the layout takes a few milliseconds). */
let machinesBody: string | undefined
const machinesPayload = (): string =>
  (machinesBody ??= JSON.stringify(
    machineCatalog.map(({ name, title, summary, machine }) => ({ name, title, summary, json: machineJson(machine), svg: statechartSvg(machine) })),
  ))

/** Whether a Host header names this server by a loopback name. */
const loopbackHost = (host: string | undefined, port: number): boolean =>
  host !== undefined && [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`].includes(host.toLowerCase())

/** Starts the inspector's server on 127.0.0.1. */
export const startInspectorServer = async ({ hub, port = 0 }: InspectorServerOptions): Promise<InspectorServer> => {
  const streams = new Set<ServerResponse>()
  const staticDir = new URL('./static/', import.meta.url)

  const send = (res: ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers })
    // (Node sends no body to a HEAD request, whatever is written.)
    res.end(body)
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const address = server.address() as AddressInfo
    if (!loopbackHost(req.headers.host, address.port)) return send(res, 403, 'text/plain', 'forbidden: the inspector answers only on 127.0.0.1\n')
    // HEAD answers as GET does, without the body (a link checker, `curl -I`).
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n', { allow: 'GET, HEAD' })
    let path: string
    try {
      path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname
    } catch {
      return send(res, 400, 'text/plain', 'bad request target\n')
    }
    const asset = staticFiles[path]
    if (asset !== undefined) return send(res, 200, asset.type, await readFile(new URL(asset.file, staticDir)))
    if (path === '/api/machines') return send(res, 200, 'application/json', machinesPayload())
    if (path === '/api/state') return send(res, 200, 'application/json', JSON.stringify({ state: hub.state(), log: hub.log }))
    if (path === '/events') {
      // HEAD: the stream's headers, and the answer ends there (the connection as the client asked).
      if (req.method === 'HEAD') return send(res, 200, 'text/event-stream', '')
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
      const write = (message: HubMessage) => res.write(`event: ${message.type}\ndata: ${JSON.stringify(message.type === 'state' ? message.state : message.type === 'lifecycle' ? message.event : message.transitions)}\n\n`)
      // The history first, then the present, then every change.
      for (const event of hub.log) write({ type: 'lifecycle', event })
      write({ type: 'state', state: hub.state() })
      const stop = hub.listen(write)
      streams.add(res)
      res.on('close', () => {
        stop()
        streams.delete(res)
      })
      return
    }
    send(res, 404, 'text/plain', 'not found\n')
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) send(res, 500, 'text/plain', `${e instanceof Error ? e.message : String(e)}\n`)
      else res.end()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const bound = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${bound}/`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of streams) res.end()
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
