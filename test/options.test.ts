/**
 * Options are checked before anything is created or opened. The option values measured to crash or hang a process
 * when they reached the binding unchecked (issue 8: a string write buffer segfaulted the first write, a string
 * maxOpenFiles or enableStatistics left the primary `opening` forever, an unknown key was ignored) are InvalidInput
 * now, naming the option's path and the bad value; run in a process of their own, they neither crash nor hang it.
 * The defaults obey the rules the options are checked against.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FaultInjector, InvalidInput, ManualClock, defaults, openIndex, type IndexOptions } from '../src/index.js'
import { fastestEscalationMs, memtableBytesPerRecord, resolveOptions } from '../src/options.js'
import { removeDir, tempDir } from './support/tmp.js'

const GiB = 1024 * 1024 * 1024

/** The measured crashes and hangs, and what they are now. */
const measured: [string, Record<string, unknown>, string, string][] = [
  [
    "writeBufferSize: '64MB' (segfaulted the first write)",
    { rocksdb: { primary: { writeBufferSize: '64MB' } } },
    'rocksdb.primary.writeBufferSize',
    'rocksdb.primary.writeBufferSize: expected an integer in [65536, 1073741824], got "64MB"',
  ],
  [
    "maxOpenFiles: 'x' (left the primary opening forever)",
    { rocksdb: { primary: { maxOpenFiles: 'x' } } },
    'rocksdb.primary.maxOpenFiles',
    'rocksdb.primary.maxOpenFiles: expected -1 or an integer in [10, 1000000], got "x"',
  ],
  [
    "enableStatistics: 'yes' (left the primary opening forever)",
    { rocksdb: { primary: { enableStatistics: 'yes' } } },
    'rocksdb.primary.enableStatistics',
    'rocksdb.primary.enableStatistics: expected a boolean, got "yes"',
  ],
  [
    '{ shard: 4 } (silently ignored)',
    { shard: 4 },
    'shard',
    'shard: unknown option (openIndex takes root, mode, freshness, shards, readers, supervision, writes, queues, requestTimeoutMs, rocksdb, maxConcurrentOpens, maintenanceIntervalMs, closeTimeoutMs, clock, random, engine, inspect)',
  ],
]

/** The edges of the RocksDB ranges: accepted, and a write goes through. */
const lowest = {
  rocksdb: {
    primary: { maxOpenFiles: 10, maxBackgroundJobs: 1, writeBufferSize: 64 * 1024, maxWriteBufferNumber: 2, enableStatistics: true },
    reader: { maxOpenFiles: -1, maxBackgroundJobs: 1, writeBufferSize: 64 * 1024, maxWriteBufferNumber: 2, enableStatistics: true },
  },
  freshness: { flushEveryRecords: 16 },
}
const highest = {
  rocksdb: {
    primary: { maxOpenFiles: 1_000_000, maxBackgroundJobs: 64, writeBufferSize: GiB, maxWriteBufferNumber: 64, enableStatistics: false },
    reader: { maxOpenFiles: -1, maxBackgroundJobs: 64, writeBufferSize: GiB, maxWriteBufferNumber: 64 },
  },
  freshness: { flushEveryRecords: GiB / 4096 },
}

describe('options', () => {
  let parent: string
  beforeAll(async () => {
    parent = await tempDir('rockvisor-options-')
  })
  afterAll(async () => removeDir(parent))

  it.each(measured)('should reject %s with InvalidInput, creating nothing', async (_label, options, field, message) => {
    const root = join(parent, 'never')
    const err = await openIndex({ root, ...options } as unknown as IndexOptions).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(InvalidInput)
    expect((err as InvalidInput).field).toBe(field)
    expect((err as InvalidInput).message).toBe(message)
    expect(existsSync(root)).toBe(false)
  })

  // Groups that are objects but not plain ones: the schema reads only own properties, so they were accepted and
  // ignored. And options whose reading throws. (In this process only: they do not survive JSON.)
  it.each([
    ["readers: new Map([['min', 99]])", (root: string) => ({ root, readers: new Map([['min', 99]]) }), 'readers', 'readers: must be a plain object ({ ... }), got a Map'],
    ['queues: /x/', (root: string) => ({ root, queues: /x/ }), 'queues', 'queues: must be a plain object ({ ... }), got a RegExp'],
    ['supervision.primary.backoff: a Date', (root: string) => ({ root, supervision: { primary: { backoff: new Date() } } }), 'supervision.primary.backoff', 'supervision.primary.backoff: must be a plain object ({ ... }), got a Date'],
    [
      'options whose getter throws',
      (root: string) =>
        Object.defineProperty({ root }, 'readers', {
          enumerable: true,
          get() {
            throw new Error('getter')
          },
        }),
      'options',
      'options: reading it threw (Error: getter): pass plain data',
    ],
  ] as const)('should reject %s with InvalidInput, creating nothing', async (_label, options, field, message) => {
    const root = join(parent, 'never')
    const err = await openIndex(options(root) as unknown as IndexOptions).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(InvalidInput)
    expect(err).toMatchObject({ field, message })
    expect(existsSync(root)).toBe(false)
  })

  it('should neither crash nor hang a process given them, and write through the edges of the RocksDB ranges', async () => {
    const dir = join(parent, 'process')
    const cases = [...measured.map(([, options]) => options), lowest, highest]
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/options-process.ts', dir, JSON.stringify(cases)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    // A process stuck on a native open may not even exit when told to: it is killed, and that fails the test.
    const killer = setTimeout(() => child.kill('SIGKILL'), 45_000)
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])))
    clearTimeout(killer)
    expect({ code, signal }).toEqual({ code: 0, signal: null })
    const outcomes = out.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(outcomes).toEqual([
      ...measured.map(([, , field, message]) => ({ tag: 'InvalidInput', field, message })),
      { ok: true },
      { ok: true },
    ])
  })

  it('should refuse a reader maxOpenFiles other than -1 instead of overriding it', async () => {
    const root = join(parent, 'never')
    const err = await openIndex({ root, rocksdb: { reader: { maxOpenFiles: 5_000 as -1 } } }).catch((e: unknown) => e)
    expect((err as InvalidInput).field).toBe('rocksdb.reader.maxOpenFiles')
    expect((err as InvalidInput).message).toBe('rocksdb.reader.maxOpenFiles: expected -1 (a reader beside a live primary must open every table file up front), got 5000')
    expect(resolveOptions({ root, rocksdb: { reader: { maxOpenFiles: -1 } } }).rocksdb.reader.maxOpenFiles).toBe(-1)
    expect(existsSync(root)).toBe(false)
  })

  it('should name every level of an unknown key and say what that level takes', () => {
    const err = (() => {
      try {
        resolveOptions({ root: 'r', rocksdb: { primary: { writeBuffer: 1 } } } as unknown as IndexOptions)
      } catch (e) {
        return e
      }
    })()
    expect(err).toBeInstanceOf(InvalidInput)
    expect((err as InvalidInput).field).toBe('rocksdb.primary.writeBuffer')
    expect((err as InvalidInput).message).toBe(
      'rocksdb.primary.writeBuffer: unknown option (rocksdb.primary takes maxOpenFiles, maxBackgroundJobs, writeBufferSize, maxWriteBufferNumber, enableStatistics)',
    )
  })

  it('should show a long bad value cut short', () => {
    expect(() => resolveOptions({ root: 'r', mode: 'w'.repeat(100_000) as 'writer' })).toThrow(/^mode: expected 'writer' or 'reader', got "w{50,}\.\.\.$/)
  })

  it('should treat an explicit undefined as omitted, and pass clocks and engines through untouched', () => {
    const clock = new ManualClock()
    const engine = new FaultInjector()
    const random = () => 0.25
    const r = resolveOptions({ root: 'r', mode: undefined, clock, engine, random, rocksdb: { primary: { writeBufferSize: undefined } }, readers: { max: undefined } })
    expect(r.mode).toBe('writer')
    expect(r.rocksdb.primary).toEqual(defaults.primaryRocksdb)
    expect(r.policy.readers.max).toBe(defaults.readerPool.max)
    expect(r.clock).toBe(clock)
    expect(r.engine).toBe(engine)
    expect(r.random).toBe(random)
  })

  it('should resolve no options to the defaults, which obey every rule', () => {
    const r = resolveOptions({ root: 'r' })
    expect(r.policy).toEqual({ primary: defaults.primarySpec, readers: { ...defaults.readerSpec, min: defaults.readerPool.min, max: defaults.readerPool.max } })
    expect(r.freshness).toEqual(defaults.freshness)
    expect(r.writes).toEqual(defaults.writes)
    expect(r.rocksdb).toEqual({ primary: defaults.primaryRocksdb, reader: defaults.readerRocksdb, compactionCpuPriority: 'low' })
    // Each child spec can escalate: its fastest maxRestarts + 1 restarts fit in the window.
    for (const spec of [defaults.primarySpec, defaults.readerSpec]) expect(fastestEscalationMs(spec)).toBeLessThan(spec.intensity.withinMs)
    expect(fastestEscalationMs(defaults.primarySpec)).toBe(52_700)
    expect(fastestEscalationMs(defaults.readerSpec)).toBe(26_350)
    expect(defaults.freshness.flushEveryRecords * memtableBytesPerRecord).toBeLessThanOrEqual(defaults.primaryRocksdb.writeBufferSize)
  })

  it('should refuse the former reader default, 20 restarts in 60 s under a 5 s backoff cap: it could never escalate', () => {
    expect(() => resolveOptions({ root: 'r', supervision: { readers: { intensity: { maxRestarts: 20 } } } })).toThrow(
      'supervision.readers.intensity: more than 20 restarts within 60000 ms can never happen: the first 21 backoff delays',
    )
    // A temporary child is never restarted: its intensity does not matter.
    expect(resolveOptions({ root: 'r', supervision: { readers: { restart: 'temporary', intensity: { maxRestarts: 20 } } } }).policy.readers.restart).toBe('temporary')
  })

  it('should take writes.msgIdFilterBytes in [0, 1 GiB] only, naming it', () => {
    const error = (writes: unknown): InvalidInput | undefined => {
      try {
        resolveOptions({ root: 'r', writes } as IndexOptions)
      } catch (e) {
        return e as InvalidInput
      }
      return undefined
    }
    for (const bad of [-1, GiB + 1, 0.5, '64MiB', null]) expect(error({ msgIdFilterBytes: bad })?.field).toBe('writes.msgIdFilterBytes')
    expect(error({ filterBytes: 1 })?.field).toBe('writes.filterBytes')
    expect(error({ msgIdFilterBytes: -1 })?.message).toBe('writes.msgIdFilterBytes: expected an integer in [0, 1073741824], got -1')
    expect(resolveOptions({ root: 'r', writes: { msgIdFilterBytes: 0 } }).writes).toEqual({ msgIdFilterBytes: 0 })
    expect(resolveOptions({ root: 'r', writes: { msgIdFilterBytes: GiB } }).writes).toEqual({ msgIdFilterBytes: GiB })
  })

  it('should blame the option the caller set when two disagree', () => {
    const field = (o: Partial<IndexOptions>) => {
      try {
        resolveOptions({ root: 'r', ...o })
      } catch (e) {
        return (e as InvalidInput).field
      }
      return undefined
    }
    expect(field({ freshness: { flushEveryRecords: 16_385 } })).toBe('freshness.flushEveryRecords')
    expect(field({ rocksdb: { primary: { writeBufferSize: 1024 * 1024 } } })).toBe('rocksdb.primary.writeBufferSize')
    expect(field({ rocksdb: { primary: { writeBufferSize: 1024 * 1024 } }, freshness: { flushEveryRecords: 257 } })).toBe('freshness.flushEveryRecords')
    expect(field({ rocksdb: { primary: { writeBufferSize: 1024 * 1024 } }, freshness: { flushEveryRecords: 256 } })).toBeUndefined()
    expect(field({ supervision: { primary: { backoff: { minMs: 20_000 } } } })).toBe('supervision.primary.backoff.minMs')
    expect(field({ supervision: { primary: { backoff: { maxMs: 50 } } } })).toBe('supervision.primary.backoff.maxMs')
    expect(field({ readers: { min: 5, max: 4 } })).toBe('readers.max')
    expect(field({ readers: { min: 5 } })).toBeUndefined()
    expect(field({ mode: 'reader', readers: { min: 0 } })).toBe('readers.min')
    expect(field({ supervision: { primary: { restart: 'temporary' } } })).toBe('supervision.primary.restart')
  })
})
