/**
 * `rocksdb.compactionCpuPriority`: RocksDB's compaction threads at the lowest CPU priority once a primary opened (the
 * default), or left as they are (`normal`). Each case runs in a process of its own (test/support/
 * priority-process.ts): the threads are the process's, and a thread once lowered stays lowered. Linux only (the
 * threads are found in /proc/self/task; elsewhere the option does nothing). A suite run at the lowest priority
 * already (`nice -n 19`) cannot tell lowered threads apart: its cases are skipped.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loweredNice } from '../src/threads.js'
import { removeDir, tempDir } from './support/tmp.js'

const execFileP = promisify(execFile)
const script = fileURLToPath(new URL('./support/priority-process.ts', import.meta.url))

type Threads = readonly { name: string; nice: number }[]

interface Outcome {
  /** The process's own nice value (its threads start with it). */
  readonly own: number
  readonly afterWrite: Threads
  readonly afterSecond: Threads
  readonly afterMaintenance: Threads
}

let parent = ''
let n = 0
beforeAll(async () => {
  parent = await tempDir('rockvisor-priority-')
})
afterAll(() => removeDir(parent))

/** Runs the support process with the options of the writer and (or `null`) of a second index. */
const run = async (first: object, second: object | null = null): Promise<Outcome> => {
  const root = join(parent, `root-${n++}`)
  const { stdout } = await execFileP(process.execPath, ['--import', 'tsx', script, root, JSON.stringify(first), JSON.stringify(second)])
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Outcome
}

const compaction = (threads: Threads) => threads.filter((t) => t.name === 'rocksdb:low' || t.name === 'rocksdb:bottom')
const flushes = (threads: Threads) => threads.filter((t) => t.name === 'rocksdb:high')
const nices = (threads: Threads) => threads.map((t) => t.nice)

describe.runIf(process.platform === 'linux')('rocksdb.compactionCpuPriority', () => {
  it("should run RocksDB's compaction threads at nice 19 once a primary opened, by default, and leave its flush threads alone", async (ctx) => {
    const { own, afterWrite } = await run({})
    if (own >= loweredNice) ctx.skip()
    expect(compaction(afterWrite).length).toBeGreaterThan(0)
    expect(nices(compaction(afterWrite))).toEqual(compaction(afterWrite).map(() => loweredNice))
    expect(flushes(afterWrite).length).toBeGreaterThan(0)
    expect(nices(flushes(afterWrite))).toEqual(flushes(afterWrite).map(() => own))
  })

  it("should leave them as they are with 'normal', maintenance included", async (ctx) => {
    const { own, afterMaintenance } = await run({ rocksdb: { compactionCpuPriority: 'normal' } })
    if (own >= loweredNice) ctx.skip()
    expect(compaction(afterMaintenance).length).toBeGreaterThan(0)
    expect(nices(compaction(afterMaintenance))).toEqual(compaction(afterMaintenance).map(() => own))
  })

  it('should lower at once the threads a later primary adds to the pools (more background jobs)', async (ctx) => {
    const { own, afterWrite, afterSecond } = await run({ rocksdb: { primary: { maxBackgroundJobs: 2 } } }, { rocksdb: { primary: { maxBackgroundJobs: 16 } } })
    if (own >= loweredNice) ctx.skip()
    expect(compaction(afterSecond).length).toBeGreaterThan(compaction(afterWrite).length)
    expect(nices(compaction(afterSecond))).toEqual(compaction(afterSecond).map(() => loweredNice))
  })

  it("should lower at the next maintenance the threads a reader's open adds to the pools", async (ctx) => {
    const { own, afterWrite, afterSecond, afterMaintenance } = await run(
      { rocksdb: { primary: { maxBackgroundJobs: 2 } } },
      { mode: 'reader', rocksdb: { reader: { maxBackgroundJobs: 16 } } },
    )
    if (own >= loweredNice) ctx.skip()
    // The reader's open added threads, which nothing lowered yet; the writer's maintenance lowers them.
    expect(compaction(afterSecond).length).toBeGreaterThan(compaction(afterWrite).length)
    expect(nices(compaction(afterSecond))).toContain(own)
    expect(nices(compaction(afterMaintenance))).toEqual(compaction(afterMaintenance).map(() => loweredNice))
  })
})
