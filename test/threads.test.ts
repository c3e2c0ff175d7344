/**
 * `rocksdb.compactionPriority`: RocksDB's compaction threads at the lowest CPU priority once a primary opened (the
 * default), or left as they are (`normal`). Each case runs in a process of its own (test/support/
 * priority-process.ts): the threads are the process's, and a thread once lowered stays lowered. Linux only (the
 * threads are found in /proc/self/task; elsewhere the option does nothing).
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loweredNice } from '../src/threads.js'
import { removeDir, tempDir } from './support/tmp.js'

const execFileP = promisify(execFile)

interface Threads {
  /** The process's own nice value (its threads start with it). */
  readonly own: number
  readonly afterFirst: readonly { name: string; nice: number }[]
  readonly afterSecond: readonly { name: string; nice: number }[]
}

/** Runs the support process with the options of a first index and (or `null`) a second one. */
let parent = ''
let n = 0
beforeAll(async () => {
  parent = await tempDir('rockvisor-priority-')
})
afterAll(() => removeDir(parent))

const run = async (first: object, second: object | null = null): Promise<Threads> => {
  const dir = join(parent, `root-${n++}`)
  const { stdout } = await execFileP(process.execPath, ['--import', 'tsx', 'test/support/priority-process.ts', dir, JSON.stringify(first), JSON.stringify(second)])
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Threads
}

const compaction = (threads: Threads['afterFirst']) => threads.filter((t) => t.name === 'rocksdb:low' || t.name === 'rocksdb:bottom')
const flushes = (threads: Threads['afterFirst']) => threads.filter((t) => t.name === 'rocksdb:high')

describe.runIf(process.platform === 'linux')('rocksdb.compactionPriority', () => {
  it("should run RocksDB's compaction threads at nice 19 once a primary opened, by default, and leave its flush threads alone", async () => {
    const { own, afterFirst } = await run({})
    expect(own).toBeLessThan(loweredNice)
    expect(compaction(afterFirst).length).toBeGreaterThan(0)
    expect(compaction(afterFirst).map((t) => t.nice)).toEqual(compaction(afterFirst).map(() => loweredNice))
    expect(flushes(afterFirst).length).toBeGreaterThan(0)
    expect(flushes(afterFirst).map((t) => t.nice)).toEqual(flushes(afterFirst).map(() => own))
  })

  it("should leave them as they are with 'normal'", async () => {
    const { own, afterFirst } = await run({ rocksdb: { compactionPriority: 'normal' } })
    expect(compaction(afterFirst).length).toBeGreaterThan(0)
    expect(compaction(afterFirst).map((t) => t.nice)).toEqual(compaction(afterFirst).map(() => own))
  })

  it('should lower the threads a later primary adds to the pool (more background jobs)', async () => {
    const { afterFirst, afterSecond } = await run({ rocksdb: { primary: { maxBackgroundJobs: 2 } } }, { rocksdb: { primary: { maxBackgroundJobs: 16 } } })
    expect(compaction(afterSecond).length).toBeGreaterThan(compaction(afterFirst).length)
    expect(compaction(afterSecond).map((t) => t.nice)).toEqual(compaction(afterSecond).map(() => loweredNice))
  })
})
