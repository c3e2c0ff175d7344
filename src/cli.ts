#!/usr/bin/env node
/**
 * The rockvisor command line.
 *
 *   rockvisor demo [--root ./data] [--metas 20000]   ingest and query a synthetic stream, crash a reader and the
 *                                                      primary on the way, and print what the supervisors did
 *   rockvisor stats [--root ./data]                   open the root and print its layout and shard count
 */
import { parseArgs } from 'node:util'
import { isRockvisorError, openIndex, type LifecycleEvent, type MessageMeta } from './index.js'

const usage = `usage: rockvisor demo [--root DIR] [--metas N]
       rockvisor stats [--root DIR]`

const main = async (argv: string[]): Promise<number> => {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { root: { type: 'string', default: './data' }, metas: { type: 'string', default: '20000' }, help: { type: 'boolean', short: 'h' } },
  })
  const command = positionals[0] ?? 'demo'
  if (values.help) {
    console.log(usage)
    return 0
  }
  if (command === 'demo') return demo(values.root, Number(values.metas))
  if (command === 'stats') {
    const index = await openIndex({ root: values.root })
    console.log(JSON.stringify({ root: index.root, shards: index.shards }, null, 2))
    await index.close()
    return 0
  }
  console.error(usage)
  return 2
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
    console.error(isRockvisorError(e) ? `${e._tag}: ${e.message}` : e)
    process.exit(1)
  },
)
