/**
 * For test/threads.test.ts, in a process of its own (RocksDB's background threads are the process's, shared by every
 * instance in it, and a thread once lowered stays lowered): opens an index on `argv[2]` with the options of the JSON
 * `argv[3]`, writes one meta (its primary opens), and prints one JSON line: its own nice value, and the name and the
 * nice value of each of the process's RocksDB threads (`/proc/self/task`), after the write and again after a second index (`argv[4]`, the
 * JSON options of a second index on `<argv[2]>-2`, or `null`) opened and wrote.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { getPriority } from 'node:os'
import { openIndex, type IndexOptions } from '../../src/index.js'

const [root, first, second] = [process.argv[2]!, JSON.parse(process.argv[3]!) as object, JSON.parse(process.argv[4] ?? 'null') as object | null]
const meta = { msgId: 'm1', timestamp: 1, segmentId: 1, offset: 1, msgLen: 10 }

/** RocksDB's threads of this process: name and nice value. */
const rocksdbThreads = (): { name: string; nice: number }[] =>
  readdirSync('/proc/self/task')
    .map((tid) => ({ tid: Number(tid), name: readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() }))
    .filter((t) => t.name.startsWith('rocksdb:'))
    .map((t) => ({ name: t.name, nice: getPriority(t.tid) }))

const writeOne = async (dir: string, options: object) => {
  const index = await openIndex({ ...options, root: dir, shards: 1 } as IndexOptions)
  await index.batchPut('t', 1, [meta])
  return index
}

const a = await writeOne(root, first)
const afterFirst = rocksdbThreads()
const b = second === null ? undefined : await writeOne(`${root}-2`, second)
const afterSecond = rocksdbThreads()
await b?.close()
await a.close()
console.log(JSON.stringify({ own: getPriority(), afterFirst, afterSecond }))
