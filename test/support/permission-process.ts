/**
 * For the permission test: opens the writer-mode root `argv[2]` (run as a user who may read the root but not the
 * shard directory of topic `t`, partition 1), writes to it and reads it, and prints one JSON line: the errors' tags,
 * reasons, causes, and how far the index's ManualClock had to move (0: no backoff cycle before the error).
 */
import { ManualClock, openIndex } from '../../src/index.js'

const root = process.argv[2]!
const clock = new ManualClock(1_000_000)
const index = await openIndex({ root, clock })
const describe = (e: unknown) => {
  const x = e as { _tag?: string; reason?: string; cause?: unknown; message?: string }
  return { tag: x._tag, reason: x.reason, cause: x._tag === 'ShardUnavailable' ? x.cause : undefined, message: x.message }
}
const write = await index.batchPut('t', 1, [{ msgId: 'x', timestamp: 1, segmentId: 1, offset: 1, msgLen: 1 }]).then(() => undefined, describe)
const read = await index.getByMsgId('t', 1, 'm1').then(() => undefined, describe)
const stats = index.stats().shards.find((s) => s.id === index.locate('t', 1).id)
console.log(JSON.stringify({ write, read, advancedMs: clock.now() - 1_000_000, state: stats?.state, restarts: stats?.restarts, cause: stats?.cause }))
await index.close()
