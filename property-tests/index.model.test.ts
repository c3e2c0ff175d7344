/**
 * Model-based runs of a live index on real RocksDB with fault injection (fc.commands + fc.scheduledModelRun): random
 * sequences of writes, reads, crashes of readers and primaries, injected open/read/write failures, load bursts (the
 * pool scales up), clock advances (backoffs, idle retirement, recycling), recovery, and closing the writer (checked to
 * hold no handle afterwards) and reopening it on the same root while requests are in flight. Commands only *issue*
 * requests; the fast-check scheduler decides when each engine call (open, MultiGet, write) completes, so requests,
 * restarts and refreshes interleave in orders it chooses, and requests overlap one another.
 *
 * The model is deliberately not a copy of the system: per partition, the list of writes in the order they were
 * issued. Writes to a shard are applied in issue order and a failed write is never applied, so at any moment a
 * partition holds the successful writes of some prefix of that list. A read is correct if its answer is the state
 * after a prefix that includes every write acknowledged before the read was issued (read-your-writes) and nothing
 * issued after it completed. Checked:
 * - every request answered correctly, or failed with one of rockvisor's typed errors, under each freshness contract:
 *   `fresh` reads of the writer reflect every write it acknowledged before the read; reads of a reader-mode index
 *   on the same root `after` a write's token reflect that write; `bounded` reads (on either index) issued at clock T
 *   reflect every write acknowledged before T - maxStalenessMs (their view is never older than the bound);
 * - never two read-write handles on one directory;
 * - restarts never exceed the declared intensity (from the lifecycle events, per shard and child kind);
 * - after close: zero native handles open, and a fresh index on the same root answers every acknowledged write.
 */
import { fc, test } from '@fast-check/vitest'
import { expect } from 'vitest'
import {
  FaultInjector,
  ManualClock,
  isRockvisorError,
  openIndex,
  rocksEngine,
  type Engine,
  type Index,
  type IndexOptions,
  type LifecycleEvent,
  type MessageMeta,
} from '../src/index.js'
import { released } from '../test/support/scheduled.js'
import { removeDir, tempDir } from '../test/support/tmp.js'

const partitions = [0, 1, 2, 3] as const
const intensity = { maxRestarts: 4, withinMs: 2_000 }
const options: Partial<IndexOptions> = {
  shards: 2,
  readers: { min: 1, max: 3, growAt: 2, idleMs: 3_000, maxLifetimeMs: 8_000 },
  supervision: {
    primary: { intensity, backoff: { minMs: 10, maxMs: 200, factor: 2, jitter: 0.5 }, resetAfterMs: 1_000 },
    readers: { intensity, backoff: { minMs: 10, maxMs: 200, factor: 2, jitter: 0.5 }, resetAfterMs: 1_000 },
  },
  maintenanceIntervalMs: 500,
  queues: { maxPendingWrites: 64, maxPendingReads: 64 },
}

/** One issued write and, once settled, its outcome. */
interface WriteRec {
  readonly partition: number
  readonly metas: readonly MessageMeta[]
  /** Position in the partition's write list. */
  readonly n: number
  outcome: 'pending' | 'ok' | 'failed'
  /** Once acknowledged: its token, and the clock time of the acknowledgement. */
  token?: string
  ackAt?: number
}

/** How a read is issued: which index, and which freshness contract it asks for. */
type ReadMode =
  | { via: 'writer'; consistency: 'fresh' }
  | { via: 'writer' | 'reader'; consistency: 'bounded'; maxStalenessMs: number }
  | { via: 'reader'; consistency: 'after' }

type ReadKind =
  | { kind: 'getByMsgId'; msgId: string }
  | { kind: 'getMsgIdBySegmentOffset'; segmentId: number; offset: number }
  | { kind: 'getRangeByTime'; startTs: number; endTs: number }

/** One issued read: the window of write-list prefixes its answer may reflect, and its outcome. */
interface ReadRec {
  readonly partition: number
  readonly read: ReadKind
  readonly mode: ReadMode
  /** Every write of the partition acknowledged when the read was issued lies below this position. */
  readonly atLeast: number
  /** Writes of the partition issued when the read completed (set on completion). */
  atMost: number
  outcome: { answer: unknown } | { error: unknown } | 'pending'
}

/** The model: what was issued, in order. */
interface Model {
  readonly writes: Map<number, WriteRec[]>
  readonly reads: ReadRec[]
}

interface Real {
  root: string
  clock: ManualClock
  faults: FaultInjector
  index: Index
  /** A reader-mode index on the same root (another process's view, in this process). */
  readerIndex: Index
  /** Lifecycle events with the clock time they happened at. */
  events: { at: number; e: LifecycleEvent }[]
  /** Requests issued and not yet settled. */
  pending: Set<Promise<unknown>>
  /** Commands run so far. */
  executed: number
  /** A close-and-reopen of the writer still under way (one at a time). */
  reopening: boolean
  /** The writer was closed and reopened once already: once per run, so that most requests meet a live writer. */
  reopened: boolean
  /** Failures found inside asynchronous checks (reported at the end of the run). */
  problems: string[]
}

/** Opens the writer-mode index of a run and records its lifecycle events. */
const openWriter = async (real: Real): Promise<Index> => {
  const index = await openIndex({ ...options, root: real.root, clock: real.clock, engine: real.faults, random: () => 0.5 })
  index.subscribe((e) => real.events.push({ at: real.clock.now(), e }))
  return index
}

/** The partition's contents after the successful writes among its first `k`. */
const stateAfter = (writes: readonly WriteRec[], k: number): Map<string, MessageMeta> => {
  const state = new Map<string, MessageMeta>()
  for (const w of writes.slice(0, k)) {
    if (w.outcome !== 'ok') continue
    for (const m of w.metas) {
      state.delete(m.msgId)
      for (const [id, old] of state) if (old.segmentId === m.segmentId && old.offset === m.offset) state.delete(id)
    }
    for (const m of w.metas) state.set(m.msgId, m)
  }
  return state
}

const answerIn = (state: Map<string, MessageMeta>, read: ReadKind): unknown => {
  const metas = [...state.values()]
  switch (read.kind) {
    case 'getByMsgId':
      return state.get(read.msgId)
    case 'getMsgIdBySegmentOffset':
      return metas.find((m) => m.segmentId === read.segmentId && m.offset === read.offset)?.msgId
    case 'getRangeByTime': {
      const inRange = metas
        .filter((m) => m.timestamp >= read.startTs && m.timestamp <= read.endTs)
        .sort((a, b) => a.timestamp - b.timestamp || a.segmentId - b.segmentId || a.offset - b.offset)
      if (inRange.length === 0) return undefined
      const so = (m: MessageMeta) => ({ segmentId: m.segmentId, offset: m.offset })
      return { first: so(inRange[0]!), last: so(inRange.at(-1)!) }
    }
  }
}

const issueRead = (model: Model, real: Real, partition: number, read: ReadKind, mode: ReadMode): void => {
  // A request to a writer that is closing only fails with Closed: it is issued once the writer is open again.
  if (mode.via === 'writer' && real.reopening) return
  const list = model.writes.get(partition) ?? []
  const now = real.clock.now()
  // The first prefix the answer may reflect: past the last write the read's contract covers.
  const covered =
    mode.consistency === 'fresh'
      ? list.findLastIndex((w) => w.outcome === 'ok')
      : mode.consistency === 'after'
        ? list.findLastIndex((w) => w.outcome === 'ok')
        : list.findLastIndex((w) => w.outcome === 'ok' && w.ackAt! < now - mode.maxStalenessMs)
  const token = mode.consistency === 'after' ? list[covered]?.token : undefined
  const rec: ReadRec = { partition, read, mode, atLeast: covered + 1, atMost: -1, outcome: 'pending' }
  model.reads.push(rec)
  const index = mode.via === 'writer' ? real.index : real.readerIndex
  const options =
    mode.consistency === 'fresh'
      ? {}
      : mode.consistency === 'after'
        ? token === undefined ? { consistency: 'bounded' as const, maxStalenessMs: 1_000_000_000 } : { after: token }
        : { consistency: 'bounded' as const, maxStalenessMs: mode.maxStalenessMs }
  const request =
    read.kind === 'getByMsgId'
      ? index.getByMsgId('t', partition, read.msgId, options)
      : read.kind === 'getMsgIdBySegmentOffset'
        ? index.getMsgIdBySegmentOffset('t', partition, read, options)
        : index.getRangeByTime('t', partition, read.startTs, read.endTs, options)
  track(
    real,
    request.then(
      (answer) => ((rec.outcome = { answer }), (rec.atMost = (model.writes.get(partition) ?? []).length)),
      (error: unknown) => ((rec.outcome = { error }), (rec.atMost = (model.writes.get(partition) ?? []).length)),
    ),
  )
}

const issueWrite = (model: Model, real: Real, partition: number, metas: readonly MessageMeta[]): void => {
  if (real.reopening) return
  const list = model.writes.get(partition) ?? []
  const rec: WriteRec = { partition, metas, n: list.length, outcome: 'pending' }
  model.writes.set(partition, [...list, rec])
  track(
    real,
    real.index.batchPut('t', partition, metas).then(
      ({ token }) => {
        rec.outcome = 'ok'
        rec.token = token
        rec.ackAt = real.clock.now()
      },
      (error: unknown) => {
        rec.outcome = 'failed'
        // A typed failure was never applied (injected failures strike before the engine call). An untyped one is a
        // finding, reported at the end of the run: thrown from here, nobody would catch it.
        if (!isRockvisorError(error)) real.problems.push(`a write failed with an untyped error: ${String(error)}`)
      },
    ),
  )
}

/**
 * Counts `p` as pending until it settles. Nobody awaits `p` itself (the run goes on while requests are in flight), so
 * a rejection of it is recorded as a problem of the run here rather than left unhandled.
 */
const track = (real: Real, p: Promise<unknown>): void => {
  const settled: Promise<void> = p
    .then(
      () => undefined,
      (e: unknown) => void real.problems.push(`a request's bookkeeping failed: ${String(e)}`),
    )
    .finally(() => real.pending.delete(settled))
  real.pending.add(settled)
}

/** Every read was answered as some allowed prefix of its partition's writes would answer, or failed typed. */
const checkReads = (model: Model): void => {
  for (const r of model.reads) {
    if (r.outcome === 'pending') throw new Error('a read never settled')
    if ('error' in r.outcome) {
      expect(isRockvisorError(r.outcome.error), String(r.outcome.error)).toBe(true)
      continue
    }
    const writes = model.writes.get(r.partition) ?? []
    const allowed = []
    for (let k = r.atLeast; k <= r.atMost; k++) allowed.push(answerIn(stateAfter(writes, k), r.read))
    expect(
      allowed,
      `${JSON.stringify(r.read)} (${JSON.stringify(r.mode)}) on partition ${r.partition} answered ${JSON.stringify(r.outcome.answer)}; allowed (prefixes ${r.atLeast}..${r.atMost}): ${JSON.stringify(allowed)}; writes: ${JSON.stringify(writes.map((w) => [w.outcome, w.metas.map((m) => `${m.msgId}@${m.timestamp}/${m.segmentId}:${m.offset}`)]))}`,
    ).toContainEqual(r.outcome.answer)
  }
}

const checkInvariants = (real: Real): void => {
  expect(real.faults.maxWritersPerDir).toBeLessThanOrEqual(1)
  const restarts = new Map<string, number[]>()
  for (const { at, e } of real.events) {
    if (e.type !== 'restarted') continue
    const key = `${e.shard}/${e.actor === 'primary' ? 'primary' : 'readers'}`
    restarts.set(key, [...(restarts.get(key) ?? []), at])
  }
  for (const times of restarts.values()) {
    for (const t of times) expect(times.filter((u) => u > t - intensity.withinMs && u <= t).length).toBeLessThanOrEqual(intensity.maxRestarts)
  }
}

type Cmd = fc.AsyncCommand<Model, Real>
const cmd = (name: string, run: (m: Model, r: Real) => void | Promise<void>): Cmd => ({
  check: () => true,
  run: async (m, r) => {
    r.executed++
    await run(m, r)
    checkInvariants(r)
  },
  toString: () => name,
})

const partitionArb = fc.constantFrom(...partitions)
const ids = ['a', 'b', 'c', 'd', 'e', 'f']
const metaArb = fc.record({
  msgId: fc.constantFrom(...ids),
  timestamp: fc.integer({ min: 0, max: 20 }),
  segmentId: fc.integer({ min: 0, max: 1 }),
  offset: fc.integer({ min: 0, max: 3 }),
  msgLen: fc.integer({ min: 0, max: 100 }),
})
const batchArb = fc
  .uniqueArray(metaArb, { minLength: 1, maxLength: 4, selector: (m) => m.msgId })
  .filter((b) => new Set(b.map((m) => `${m.segmentId}:${m.offset}`)).size === b.length)
const readArb: fc.Arbitrary<ReadKind> = fc.oneof(
  fc.constantFrom(...ids, 'zz').map((msgId) => ({ kind: 'getByMsgId' as const, msgId })),
  fc.record({ kind: fc.constant('getMsgIdBySegmentOffset' as const), segmentId: fc.integer({ min: 0, max: 1 }), offset: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ kind: fc.constant('getRangeByTime' as const), startTs: fc.integer({ min: 0, max: 20 }), endTs: fc.integer({ min: 0, max: 20 }) }),
)

const modeArb: fc.Arbitrary<ReadMode> = fc.oneof(
  fc.constant({ via: 'writer' as const, consistency: 'fresh' as const }),
  fc.constant({ via: 'reader' as const, consistency: 'after' as const }),
  fc.record({
    via: fc.constantFrom('writer' as const, 'reader' as const),
    consistency: fc.constant('bounded' as const),
    maxStalenessMs: fc.constantFrom(0, 100, 1_000, 10_000),
  }),
)

const writeCommand = fc.tuple(partitionArb, batchArb).map(([p, metas]) =>
  cmd(`batchPut(${p}, ${metas.map((m) => `${m.msgId}@${m.timestamp}/${m.segmentId}:${m.offset}`).join(' ')})`, (m, r) => issueWrite(m, r, p, metas)),
)
const readCommand = fc.tuple(partitionArb, readArb, modeArb).map(([p, read, mode]) =>
  cmd(`${read.kind}(${p}, ${JSON.stringify(read)}) ${JSON.stringify(mode)}`, (m, r) => issueRead(m, r, p, read, mode)),
)

// fc.commands picks among these evenly: writes and reads are listed three times each, so that most runs write and
// read a good deal between their faults, crashes and reopenings (a reopening fails the requests it cuts short).
const commands = [
  writeCommand,
  writeCommand,
  writeCommand,
  readCommand,
  readCommand,
  readCommand,
  fc.tuple(partitionArb, fc.array(fc.tuple(readArb, modeArb), { minLength: 3, maxLength: 12 })).map(([p, reads]) =>
    cmd(`burst of ${reads.length} reads on ${p} (the pool may scale up)`, (m, r) => reads.forEach(([read, mode]) => issueRead(m, r, p, read, mode))),
  ),
  fc.tuple(partitionArb, fc.constantFrom('primary', 'readers', 'reader-1', 'reader-2', 'reader-3') as fc.Arbitrary<'primary' | 'readers' | `reader-${number}`>).map(([p, target]) =>
    cmd(`crash ${target} of ${p}`, (_m, r) => {
      try {
        r.index.faults.crash('t', p, target)
      } catch (e) {
        // The writer may be closing (close and reopen): a typed Closed error is the contract.
        if (!isRockvisorError(e)) throw e
      }
    }),
  ),
  fc.tuple(fc.constantFrom('open', 'read', 'write') as fc.Arbitrary<'open' | 'read' | 'write'>, fc.constantFrom('primary', 'reader') as fc.Arbitrary<'primary' | 'reader'>, fc.integer({ min: 1, max: 3 })).map(([op, role, n]) =>
    cmd(`fail next ${n} ${role} ${op}s`, (_m, r) => r.index.faults.failNext(op, n, { role })),
  ),
  fc.integer({ min: 1, max: 5_000 }).map((ms) => cmd(`advance clock ${ms} ms`, (_m, r) => r.clock.advance(ms))),
  fc.constant(cmd('recover', (_m, r) => r.index.recover())),
  fc.constant(
    cmd('close the writer and reopen it (requests in flight complete or fail with Closed)', (_m, r) => {
      if (r.reopening || r.reopened) return
      r.reopening = r.reopened = true
      const old = r.index
      track(
        r,
        old
          .close()
          .then(async () => {
            if (old.stats().totals.handles !== 0) r.problems.push(`a closed index still holds ${old.stats().totals.handles} handles`)
            r.index = await openWriter(r)
          })
          .catch((e: unknown) => void r.problems.push(`close and reopen failed: ${String(e)}`))
          .finally(() => (r.reopening = false)),
      )
    }),
  ),
]

/**
 * The real engine, with the completion of every open, write and MultiGet (the point reads' key-by-key MultiGet too)
 * released by the scheduler. Each real call starts at once; `released` keeps its outcome (a rejection too) until the
 * scheduler hands it to the caller.
 */
const scheduled = (s: fc.Scheduler): Engine => ({
  open: async (path, opts) => {
    const role = opts.readOnly ? 'reader' : 'primary'
    const handle = await released(s, rocksEngine.open(path, opts), `open ${role}`)
    return {
      path: handle.path,
      readOnly: handle.readOnly,
      getMany: (keys) => released(s, handle.getMany(keys), `getMany on ${role}`),
      getManySettled: (keys) => released(s, handle.getManySettled!(keys), `getManySettled on ${role}`),
      write: (ops) => released(s, handle.write(ops), 'write'),
      iterate: (range) => handle.iterate(range),
      withSnapshot: (fn) => handle.withSnapshot(fn),
      flush: () => handle.flush(),
      property: (name) => handle.property(name),
      close: () => handle.close(),
    }
  },
})

/**
 * Lets every issued request settle, advancing the clock so that backoffs elapse. Bounded by wall time only as a
 * liveness guard (real RocksDB I/O runs on libuv's pool): a request still pending after 5 s fails the property.
 */
const drain = async (real: Real): Promise<void> => {
  real.faults.clear()
  const deadline = Date.now() + 5_000
  while (real.pending.size > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1))
    if (real.pending.size > 0) await real.clock.advance(20)
  }
  if (real.pending.size > 0 && process.env.MODEL_DEBUG) console.log('STUCK', JSON.stringify(real.index.stats()), real.events.map((x) => `${x.e.type} ${x.e.actor}`))
  expect(real.pending.size, 'requests that never settled').toBe(0)
}

/** Liveness guard (wall time, not a timing assertion): fails the run if `p` has not settled within 5 s. */
const withinWallTime = <T>(p: Promise<T>, what: () => string): Promise<T> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const guard = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what()} never finished`)), 5_000)))
  return Promise.race([p, guard]).finally(() => clearTimeout(timer))
}

test.prop([fc.scheduler(), fc.commands(commands, { maxCommands: 40, size: 'medium' })], {
  numRuns: Number(process.env.MODEL_RUNS ?? 30),
  ...(process.env.MODEL_SEED ? { seed: Number(process.env.MODEL_SEED), endOnFailure: true } : {}),
})(
  'should answer like the model and keep every supervision invariant under faults and interleavings',
  async (s, cmds) => {
    const root = await tempDir()
    const clock = new ManualClock(0)
    const faults = new FaultInjector(scheduled(s))
    const real: Real = { root, clock, faults, events: [], pending: new Set(), executed: 0, reopening: false, reopened: false, problems: [], index: undefined as unknown as Index, readerIndex: undefined as unknown as Index }
    const model: Model = { writes: new Map(), reads: [] }
    try {
      real.index = await s.waitFor(openWriter(real))
      real.readerIndex = await s.waitFor(openIndex({ ...options, mode: 'reader', root, clock, engine: faults, random: () => 0.5 }))
      real.readerIndex.subscribe((e) => real.events.push({ at: clock.now(), e: { ...e, shard: `reader-mode:${e.shard}` } }))
      await fc.scheduledModelRun(s, () => ({ model, real }), cmds)
      await s.waitFor(drain(real))
      checkReads(model)
      checkInvariants(real)
      expect(real.problems).toEqual([])
      if (process.env.MODEL_DEBUG) {
        const writes = [...model.writes.values()].flat()
        console.log(`run: ${real.executed}/${[...cmds].length} commands, ${writes.filter((w) => w.outcome === 'ok').length}/${writes.length} writes ok, ${model.reads.filter((r) => r.outcome !== 'pending' && 'answer' in r.outcome).length}/${model.reads.length} reads answered, ${real.events.filter((x) => x.e.type === 'restarted').length} restarts`)
      }
      await s.waitFor(
        withinWallTime(Promise.all([real.index.close(), real.readerIndex.close()]), () => `close (${JSON.stringify([real.index.stats(), real.readerIndex.stats()])})`),
      )
      expect(faults.liveHandles).toBe(0)
      // Every acknowledged write survives: a fresh index on the same root answers like the model's final state.
      const reopened = await openIndex({ ...options, root })
      try {
        for (const p of partitions) {
          const expected = stateAfter(model.writes.get(p) ?? [], Number.MAX_SAFE_INTEGER)
          for (const id of [...ids, 'zz']) expect(await reopened.getByMsgId('t', p, id)).toEqual(expected.get(id))
        }
      } finally {
        await reopened.close()
      }
    } finally {
      await s.waitFor(withinWallTime(Promise.all([real.index?.close(), real.readerIndex?.close()]), () => 'close')).catch(() => undefined)
      await removeDir(root)
    }
  },
)
