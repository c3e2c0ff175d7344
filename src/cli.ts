#!/usr/bin/env node
/**
 * The rockvisor command line.
 *
 *   rockvisor demo [--root ./data] [--metas 20000]   ingest and query a synthetic stream, crash a reader and the
 *                                                      primary on the way, and print what the supervisors did
 *   rockvisor stats [--root ./data]                   print an existing root's shard count; creates nothing (a
 *                                                      missing root is a one-line error, exit 1)
 *   rockvisor rebuild-manifest --root DIR [--shards N] [--force]
 *                                                      rebuild a lost, garbled or edited rockvisor.json from the
 *                                                      shard directories (see rebuildManifest) and print the result
 *
 * Exit codes: 0 done, 1 a rockvisor error (printed as one line, `<tag>: <message>`), 2 a usage error.
 */
import { parseArgs } from 'node:util'
import { isRockvisorError, openIndex, rebuildManifest, type LifecycleEvent, type MessageMeta } from './index.js'

const usage = `usage: rockvisor demo [--root DIR] [--metas N]
       rockvisor stats [--root DIR]
       rockvisor rebuild-manifest --root DIR [--shards N] [--force]`

/** A command-line mistake: printed with the usage, exit 2. */
class UsageError extends Error {}

const main = async (argv: string[]): Promise<number> => {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        root: { type: 'string' },
        metas: { type: 'string', default: '20000' },
        shards: { type: 'string' },
        force: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
    })
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
  const { positionals, values } = parsed
  const command = positionals[0] ?? 'demo'
  if (values.help) {
    console.log(usage)
    return 0
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[1])}`)
  const root = values.root ?? './data'
  if (command === 'demo') return demo(root, Number(values.metas))
  if (command === 'stats') {
    // Reader mode opens an existing root only, and opens no shard until a read: stats never creates anything.
    const index = await openIndex({ root, mode: 'reader' })
    console.log(JSON.stringify({ root: index.root, shards: index.shards }, null, 2))
    await index.close()
    return 0
  }
  if (command === 'rebuild-manifest') {
    if (values.root === undefined) throw new UsageError('rebuild-manifest needs --root DIR')
    // A well-formed number is passed as a number; anything else as is, for rebuildManifest's InvalidInput.
    const shards = values.shards === undefined ? undefined : /^[0-9]+$/.test(values.shards) ? Number(values.shards) : values.shards
    const result = await rebuildManifest(values.root, { ...(shards === undefined ? {} : { shards: shards as number }), force: values.force })
    const topics = result.found.map((t) => ({
      dir: t.dir,
      ...(t.topic === undefined ? {} : { topic: t.topic }),
      shardDirectories: t.shards.map((s) => s.shard),
      partitions: t.shards.reduce((n, s) => n + s.partitions.length, 0),
    }))
    console.log(JSON.stringify({ root: values.root, shards: result.shards, previous: result.previous, topics }, null, 2))
    return 0
  }
  throw new UsageError(`unknown command ${JSON.stringify(command)}`)
}

const demo = async (root: string, total: number): Promise<number> => {
  if (!Number.isSafeInteger(total) || total < 1) throw new Error('--metas must be a positive integer')
  const started = performance.now()
  const index = await openIndex({ root, shards: 4, readers: { min: 2, max: 4 } })
  const log = (line: string) => console.log(`${((performance.now() - started) / 1000).toFixed(3)}s  ${line}`)
  index.subscribe((e: LifecycleEvent) => log(`event  ${e.type.padEnd(9)} ${e.shard} ${e.actor}${e.detail ? ` (${e.detail})` : ''}`))

  const topic = 'orders'
  const partitions = 8
  const base = Date.now()
  log(`ingesting ${total} metas into ${partitions} partitions of topic "${topic}" under ${root} (${index.shards} shards)`)
  const perPartition = Math.ceil(total / partitions)
  let bytes = 0
  for (let start = 0; start < perPartition; start += 500) {
    const writes: Promise<{ bytes: number }>[] = []
    for (let p = 0; p < partitions; p++) {
      const metas: MessageMeta[] = []
      for (let i = start; i < Math.min(start + 500, perPartition); i++) {
        metas.push({ msgId: `m-${p}-${i}`, timestamp: base + i * 10, segmentId: Math.floor(i / 1000), offset: (i % 1000) * 128, msgLen: 128 })
      }
      writes.push(index.batchPut(topic, p, metas))
    }
    for (const w of await Promise.all(writes)) bytes += w.bytes
  }
  log(`ingested: ${bytes} bytes of index entries`)

  const probe = Math.floor(perPartition / 2)
  log(`getByMsgId(m-3-${probe}) -> ${JSON.stringify(await index.getByMsgId(topic, 3, `m-3-${probe}`))}`)
  log(`getRangeByTime(p3, 1 s window) -> ${JSON.stringify(await index.getRangeByTime(topic, 3, base + 1000, base + 1999))}`)
  log(`getMsgIdBySegmentOffset(p3, {0, 256}) -> ${JSON.stringify(await index.getMsgIdBySegmentOffset(topic, 3, { segmentId: 0, offset: 256 }))}`)
  let scanned = 0
  for await (const _ of index.scanByTime(topic, 3, base, base + 4999)) scanned++
  log(`scanByTime(p3, first 5 s) streamed ${scanned} metas`)

  log(`crashing every reader of shard ${index.locate(topic, 3).id} (it holds partition 3): the supervisor replaces them, reads keep being answered`)
  index.faults.crash(topic, 3, 'readers')
  log(`read during the crash -> ${(await index.getByMsgId(topic, 3, 'm-3-0')) ? 'answered' : 'MISSING'}`)
  log('crashing the primary of that shard: it reopens after a backoff, the write waits for it')
  index.faults.crash(topic, 3, 'primary')
  await index.batchPut(topic, 3, [{ msgId: 'after-crash', timestamp: base + perPartition * 10, segmentId: 99, offset: 0, msgLen: 1 }])
  log(`write after the crash acknowledged; read back -> ${JSON.stringify(await index.getByMsgId(topic, 3, 'after-crash'))}`)

  const { deleted } = await index.deleteBefore(topic, 0, base + 1000)
  log(`retention on partition 0 (before +1 s) removed ${deleted} metas from all three views`)

  const stats = index.stats()
  log(`stats: ${stats.totals.primaries} primaries, ${stats.totals.readers} readers, ${stats.totals.handles} native handles`)
  for (const s of stats.shards) {
    log(`  shard ${s.id}: ${s.state}/${s.pool}, primary ${s.primary}, readers ${JSON.stringify(s.readers)}, restarts ${JSON.stringify(s.restarts)}, sequence ${s.sequence}`)
  }
  await index.close()
  log(`closed (native handles still open: ${index.faults.liveHandles})`)
  return 0
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) {
      console.error(`${e.message}\n${usage}`)
      process.exit(2)
    }
    console.error(isRockvisorError(e) ? `${e._tag}: ${e.message}` : e)
    process.exit(1)
  },
)
