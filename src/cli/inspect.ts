/**
 * `rockvisor inspect`: the inspector page on an existing root, opened in reader mode (beside a writer in another
 * process, or alone). Every second it reads one partition of each shard directory on disk, which opens the shard's
 * readers and keeps their views fresh, so the page shows the tree and how far each view is behind.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { openIndex, shardOf, type Index } from '../index.js'
import { InspectorHub } from '../inspector/hub.js'
import { startInspectorServer } from '../inspector/server.js'
import type { Io } from './io.js'

export interface InspectFlags {
  readonly root: string
  readonly port: number
  /** Stop after this many milliseconds (for scripts and tests); default: at Ctrl-C. */
  readonly for?: number
}

/** A msgId no meta has: reading it opens the shard's reader and answers nothing. */
const probeId = '\u{1F50D} rockvisor probe'

/** The smallest partition routed to `shard` (which must be below `shards`). */
const partitionOf = (shard: number, shards: number): number => {
  for (let p = 0; ; p++) if (shardOf(p, shards) === shard) return p
}

/** (topic, shard) of every shard directory on disk whose number is below `shards` (others are no shard of the root). */
const shardsOnDisk = async (root: string, shards: number): Promise<Array<{ topic: string; shard: number }>> => {
  const out: Array<{ topic: string; shard: number }> = []
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue
    let topic: string
    try {
      topic = await readFile(join(root, entry.name, 'TOPIC'), 'utf8')
    } catch {
      continue
    }
    const names = await readdir(join(root, entry.name, 'index')).catch(() => [] as string[])
    for (const name of names) if (/^(?:0|[1-9][0-9]{0,4})$/.test(name) && Number(name) < shards) out.push({ topic, shard: Number(name) })
  }
  return out
}

/**
 * Reads one partition of each shard directory on disk (a msgId no meta has), which opens its readers and keeps their
 * views fresh. Never throws: a shard's failure shows on the page (its state, its events); a root that cannot be
 * listed (removed while the page is open) is said in the page's activity line (`activity` again once it can).
 */
export const probeShards = async (index: Index, hub: InspectorHub, activity: string): Promise<void> => {
  const shards = await shardsOnDisk(index.root, index.shards).then(
    (list) => ((hub.activity = activity), list),
    (e: unknown) => ((hub.activity = `cannot list the root ${index.root}: ${e instanceof Error ? e.message : String(e)}`), []),
  )
  for (const { topic, shard } of shards) {
    try {
      await index.getByMsgId(topic, partitionOf(shard, index.shards), probeId)
    } catch {
      // Shown on the page; the next probe tries again.
    }
  }
}

export const inspectCommand = async (flags: InspectFlags, io: Io): Promise<number> => {
  const hub = new InspectorHub()
  const index = await openIndex({ root: flags.root, mode: 'reader', inspect: hub.inspect })
  hub.attach(index)
  hub.activity = 'reader mode: each shard read every second'
  let server
  try {
    server = await startInspectorServer({ hub, port: flags.port })
  } catch (e) {
    await index.close()
    hub.close()
    throw (e as NodeJS.ErrnoException).code === 'EADDRINUSE' ? new Error(`port ${flags.port} is in use: pass --port N (0 picks a free one)`) : e
  }
  let probing = false
  const activity = hub.activity
  const probe = async () => {
    if (probing) return
    probing = true
    try {
      await probeShards(index, hub, activity)
    } finally {
      probing = false
    }
  }
  await probe()
  const timer = setInterval(() => void probe(), 1000)
  io.out(`rockvisor inspector: ${server.url}\n  ${index.root} in reader mode, ${index.shards} shards per topic; bound to 127.0.0.1 only\n  press Ctrl-C to stop\n`)
  await (flags.for === undefined ? io.interrupted() : Promise.race([io.interrupted(), new Promise((r) => setTimeout(r, flags.for))]))
  clearInterval(timer)
  await server.close()
  hub.close()
  await index.close()
  return 0
}
