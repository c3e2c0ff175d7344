/**
 * A writer in its own process, for the two-process and crash tests: opens `argv[2]` in writer mode, writes `argv[3]` batches
 * to partition 1 of topic `t`, printing one JSON line per acknowledged batch ({ token, msgId }), then `ready`; it keeps
 * the root (and its locks) until a line arrives on stdin, then closes and exits.
 */
import { createInterface } from 'node:readline'
import { openIndex } from '../../src/index.js'

const [root, batches] = [process.argv[2]!, Number(process.argv[3] ?? 10)]
// argv[4]: flush the memtable after this many records (default: rockvisor's).
const flushEveryRecords = process.argv[4] === undefined ? undefined : Number(process.argv[4])
const index = await openIndex({ root, shards: 2, ...(flushEveryRecords === undefined ? {} : { freshness: { flushEveryRecords } }) })
for (let b = 0; b < batches; b++) {
  const msgId = `p${process.pid}-${b}`
  const { token } = await index.batchPut('t', 1, [{ msgId, timestamp: 1_000 + b, segmentId: 1, offset: b, msgLen: 10 }])
  console.log(JSON.stringify({ token, msgId }))
}
console.log('ready')
for await (const _ of createInterface({ input: process.stdin })) break
await index.close()
