/**
 * For test/threads.test.ts, in a process of its own (RocksDB's background threads are the process's, shared by every
 * instance in it, and a thread once lowered stays lowered). `argv[2]`: a root; `argv[3]`: the JSON options of a
 * writer-mode index opened there on a `ManualClock`, which writes one meta (its primary opens); `argv[4]` (optional):
 * the JSON options of a second index: in `reader` mode on the same root, it reads the meta back (its reader opens);
 * in writer mode on `<root>-2`, it writes one meta (its primary opens). Either open may add threads to RocksDB's
 * pools. Then the first index's clock is advanced by one maintenance interval. Prints one JSON line: this process's
 * nice value, and the name and the nice value of each of its RocksDB threads after the first write, after the second
 * index's read or write, and after the maintenance.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { getPriority } from 'node:os'
import { ManualClock, openIndex, type IndexOptions } from '../../src/index.js'

const [root, first, second] = [process.argv[2]!, JSON.parse(process.argv[3]!) as object, JSON.parse(process.argv[4] ?? 'null') as object | null]
const meta = { msgId: 'm1', timestamp: 1, segmentId: 1, offset: 1, msgLen: 10 }
const maintenanceIntervalMs = 1_000

/** RocksDB's threads of this process: name and nice value (a thread that ended meanwhile is left out). */
const rocksdbThreads = (): { name: string; nice: number }[] =>
  readdirSync('/proc/self/task').flatMap((tid) => {
    try {
      const name = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim()
      return name.startsWith('rocksdb:') ? [{ name, nice: getPriority(Number(tid)) }] : []
    } catch {
      return []
    }
  })

const clock = new ManualClock()
const writer = await openIndex({ ...first, root, shards: 1, clock, maintenanceIntervalMs } as IndexOptions)
await writer.batchPut('t', 1, [meta])
const afterWrite = rocksdbThreads()
let afterSecond = afterWrite
if (second !== null) {
  const reading = (second as { mode?: string }).mode === 'reader'
  const other = await openIndex({ ...second, root: reading ? root : `${root}-2`, shards: 1 } as IndexOptions)
  if (reading) {
    if ((await other.getByMsgId('t', 1, 'm1'))?.msgId !== 'm1') throw new Error('the reader-mode index did not read the meta back')
  } else await other.batchPut('t', 1, [meta])
  afterSecond = rocksdbThreads()
  await other.close()
}
await clock.advance(maintenanceIntervalMs)
const afterMaintenance = rocksdbThreads()
await writer.close()
console.log(JSON.stringify({ own: getPriority(), afterWrite, afterSecond, afterMaintenance }))
