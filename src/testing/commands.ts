/**
 * fast-check commands that drive a live index on real RocksDB and check every answer against the {@link IndexModel}:
 * writes, retention, reads under every freshness contract (on the writer-mode index and on a reader-mode index of
 * the same root), crashes of primaries and readers, injected open/read/write failures, clock advances, recovery, and
 * closing and reopening the writer while requests are in flight.
 *
 * Commands only *issue* requests; with the scheduled engine ({@link scheduledEngine}) the fast-check scheduler
 * decides when each engine call completes, so requests, restarts and refreshes interleave in orders it chooses and
 * replays from a seed. Answers are checked when the run ends ({@link checkRun}), against the window of history
 * prefixes each read's contract allows; the supervision invariants are checked after every command.
 *
 * Checked (each a {@link ModelViolation} with its `kind`):
 * - `answer`: every read answered as some allowed prefix of its partition's history answers it;
 * - `untyped-error`: every failed request failed with one of rockvisor's typed errors;
 * - `invalid-input`: no request of the run (all valid: the domain is checked first) was refused as invalid;
 * - `retention`: every acknowledged `deleteBefore` deleted exactly what the model held below its bound;
 * - `writers`: never two read-write handles on one directory;
 * - `intensity`: restarts of a shard's primary (or of its readers) never exceed the declared intensity within its
 *   window, counting from the shard's last recovery;
 * - `stuck`: every request settles once faults are cleared and the clock moves on;
 * - `leak`: after close, no native handle is open;
 * - `lost-write`: a fresh index on the same root holds one of the model's candidate states (every acknowledged
 *   write, no failed batch, and of each failed retention none or some whole chunks), in all three views: its time
 *   view whole, and every msgId and place of the domain by id and by place.
 *
 * Use {@link indexModelProperty} for the whole run, or {@link indexCommands} with your own `fc.scheduledModelRun`.
 */
import fc from 'fast-check'
import { InvalidInput, isRockvisorError } from '../errors.js'
import { openIndex, rocksEngine, type Engine, type Index, type ReadOptions } from '../index.js'
import type { IndexOptions } from '../options.js'
import { resolveOptions } from '../options.js'
import type { CrashTarget } from '../runtime.js'
import { collidingBatch, query, resolveDomain, type CollidingDomain, type Query } from './arbitraries.js'
import { deepEqual, describeMetas, describeQuery, IndexModel, type Freshness, type ReadWindow } from './model.js'
import { scheduledEngine, type ScheduledEngine } from './scheduled.js'
import { withTempIndex, type TempIndex } from './temp-index.js'

/** What a model run violated. `kind` is stable; the message says what happened, with the partition's history. */
export class ModelViolation extends Error {
  override readonly name = 'ModelViolation'
  constructor(
    readonly kind: 'answer' | 'untyped-error' | 'invalid-input' | 'retention' | 'writers' | 'intensity' | 'stuck' | 'leak' | 'lost-write',
    message: string,
  ) {
    super(`${kind}: ${message}`)
  }
}

/**
 * The index options of a model run unless you give yours: small pools, short backoffs, tight intensity, and a
 * primary that flushes after every few metas (so that writes, flushes and reader opens interleave).
 */
export const modelRunOptions: NonNullable<ModelRunConfig['options']> = {
  shards: 2,
  freshness: { flushEveryRecords: 9, flushIntervalMs: 1_000 },
  readers: { min: 1, max: 3, growAt: 2, idleMs: 3_000, maxLifetimeMs: 8_000 },
  supervision: {
    primary: { intensity: { maxRestarts: 4, withinMs: 2_000 }, backoff: { minMs: 10, maxMs: 200, factor: 2, jitter: 0.5 }, resetAfterMs: 1_000 },
    readers: { intensity: { maxRestarts: 4, withinMs: 2_000 }, backoff: { minMs: 10, maxMs: 200, factor: 2, jitter: 0.5 }, resetAfterMs: 1_000 },
  },
  maintenanceIntervalMs: 500,
  queues: { maxPendingWrites: 64, maxPendingReads: 64 },
}

/** What a model run writes to and how. Every field has a default. */
export interface ModelRunConfig {
  /** The topic written and read. Default `'t'`. */
  readonly topic?: string
  /** The partitions written and read. Default `[0, 1, 2, 3]`. */
  readonly partitions?: readonly number[]
  /** The small domain of metas and reads (see `arbitraries.collidingMeta`). */
  readonly domain?: CollidingDomain
  /** The options of both indexes (root, mode, clock and engine are the run's). Default {@link modelRunOptions}. */
  readonly options?: Omit<Partial<IndexOptions>, 'root' | 'mode' | 'clock' | 'engine'>
  /** Also read through a reader-mode index on the same root (`after` tokens, `bounded`). Default true. */
  readonly readerIndex?: boolean
  /** Include the command that closes and reopens the writer mid-run. Default true. */
  readonly reopen?: boolean
  /** Most commands in one run. Default 40. */
  readonly maxCommands?: number
  /**
   * The storage engine the runs use, under the scheduler and the fault injector: by default RocksDB's own
   * (`rocksEngine`); a wrapper of it plants a storage bug, to see that the runs catch it.
   */
  readonly engine?: Engine
  /**
   * To replay a shrunk counterexample: the `replayPath` fast-check prints with it (`/*replayPath="..."*\/`), given
   * with the failure's `seed` and `path` to `fc.assert` (fast-check's `fc.commands` option).
   */
  readonly replayPath?: string
  /**
   * How many times the crash, the fail-next and the let-the-shards-open commands are listed among the others (more:
   * more faults). Default 1.
   */
  readonly faultWeight?: number
  /** Called with what each passing run of {@link indexModelProperty} did. */
  readonly onRun?: (summary: RunSummary) => void
}

/** How a read is issued: through which index, under which contract. */
export type ReadMode =
  | { readonly via: 'writer'; readonly consistency: 'fresh' | 'primary' }
  | { readonly via: 'writer' | 'reader'; readonly consistency: 'bounded'; readonly maxStalenessMs: number }
  | { readonly via: 'reader'; readonly consistency: 'after' }

/** One issued read and, once settled, its outcome. */
export interface ReadRecord {
  readonly query: Query
  readonly mode: ReadMode
  readonly window: ReadWindow
  outcome: { readonly answer: unknown } | { readonly error: unknown } | 'pending'
}

/** The system side of a model run: the indexes, and what the run has issued and found so far. */
export interface ModelRun {
  readonly ctx: TempIndex
  readonly topic: string
  readonly partitions: readonly number[]
  readonly intensity: { readonly primary: { maxRestarts: number; withinMs: number }; readonly readers: { maxRestarts: number; withinMs: number } }
  /** The reader-mode index, when the config asks for one. */
  readerIndex: Index | undefined
  readonly reads: ReadRecord[]
  /** Requests issued and not yet settled. */
  readonly pending: Set<Promise<void>>
  /** What each pending request is (for a `stuck` violation). */
  readonly pendingWhat?: WeakMap<Promise<void>, string>
  /** Violations found inside asynchronous callbacks (thrown by {@link checkRun}). */
  readonly problems: ModelViolation[]
  /** A close-and-reopen of the writer under way: requests to the writer are not issued meanwhile. */
  reopening: Promise<void> | undefined
  /** The writer was closed and reopened already (once per run). */
  reopened: boolean
  /** The scheduled engine under the fault injector (each command waits for its real calls: see `idle`). */
  readonly engine?: ScheduledEngine
  /**
   * Crashes drawn while their shard had nothing to crash (not opened yet, or still opening): each command tries them
   * again first, until one breaks something.
   */
  readonly armedCrashes?: ArmedCrash[]
}

/** A crash command's target: a partition's shard and what to break there (see {@link CrashChoice}). */
export interface ArmedCrash {
  readonly partition: number
  readonly choice: CrashChoice
}

/** A command of a model run. `toString` names it readably (fast-check prints it in a counterexample). */
export type IndexCommand = fc.AsyncCommand<IndexModel, ModelRun>

/**
 * Counts `p` as pending until it settles. Nobody awaits `p` itself (the run goes on while requests are in flight),
 * so a rejection of it is recorded as a problem of the run rather than left unhandled.
 */
const track = (run: ModelRun, p: Promise<unknown>, what: string): void => {
  const settled: Promise<void> = p
    .then(
      () => undefined,
      (e: unknown) => void run.problems.push(e instanceof ModelViolation ? e : new ModelViolation('untyped-error', `a request's bookkeeping failed: ${String(e)}`)),
    )
    .finally(() => run.pending.delete(settled))
  run.pending.add(settled)
  run.pendingWhat?.set(settled, what)
}

/** `fn()`, with a synchronous throw (scanByTime checks its arguments, and a closed index, when called) as a rejection. */
const settledCall = <T>(fn: () => Promise<T>): Promise<T> => {
  try {
    return fn()
  } catch (e) {
    return Promise.reject(e)
  }
}

const collect = async <T>(it: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

/** Issues a write (a batch, or retention) on the writer-mode index and records it in the model. */
export const issueWrite = (model: IndexModel, run: ModelRun, partition: number, write: Parameters<IndexModel['issue']>[2]): void => {
  // A request to a writer that is closing only fails with Closed: it is issued once the writer is open again.
  if (run.reopening !== undefined) return
  const rec = model.issue(run.topic, partition, write)
  const index = run.ctx.index
  const request = write.kind === 'batchPut' ? index.batchPut(run.topic, partition, write.metas) : index.deleteBefore(run.topic, partition, write.before)
  track(
    run,
    request.then(
      (r) => model.settle(rec, { token: r.token, at: run.ctx.clock.now(), ...('deleted' in r ? { deleted: r.deleted } : {}) }),
      (error: unknown) => {
        // A failed batch was never applied; a failed retention may have removed whole chunks (the model knows both).
        model.settle(rec, 'failed')
        if (!isRockvisorError(error)) run.problems.push(new ModelViolation('untyped-error', `${write.kind} failed with an untyped error: ${String(error)}`))
        // The run's requests are valid (its domain is checked): refusing one is a bug, not an outcome of faults.
        else if (error instanceof InvalidInput) run.problems.push(new ModelViolation('invalid-input', `${write.kind} was refused as invalid: ${error.message}`))
      },
    ),
    write.kind === 'batchPut' ? `batchPut(${partition}, ${describeMetas(write.metas)})` : `deleteBefore(${partition}, ${write.before})`,
  )
}

/** The options a read of `mode` passes (`after`: the token of the partition's last acknowledged write, if any). */
const readOptionsOf = (mode: ReadMode, token: string | undefined): ReadOptions => {
  switch (mode.consistency) {
    case 'fresh':
      return {}
    case 'primary':
      return { consistency: 'primary' }
    case 'after':
      // Nothing acknowledged yet: any view will do.
      return token === undefined ? { consistency: 'bounded', maxStalenessMs: 1_000_000_000 } : { after: token }
    case 'bounded':
      return { consistency: 'bounded', maxStalenessMs: mode.maxStalenessMs }
  }
}

/** Issues a read and records its window; its answer is checked by {@link checkRun}. */
export const issueRead = (model: IndexModel, run: ModelRun, partition: number, q: Query, mode: ReadMode): void => {
  if (mode.via === 'writer' && run.reopening !== undefined) return
  const now = run.ctx.clock.now()
  const after = mode.consistency === 'after' ? model.lastAcknowledged(run.topic, partition) : undefined
  const freshness: Freshness =
    mode.consistency === 'bounded' ? { consistency: 'bounded', maxStalenessMs: mode.maxStalenessMs } : mode.consistency === 'after' ? { consistency: 'after', write: after } : { consistency: 'fresh' }
  const window = model.openRead(run.topic, partition, freshness, now)
  const rec: ReadRecord = { query: q, mode, window, outcome: 'pending' }
  run.reads.push(rec)
  const index = mode.via === 'writer' ? run.ctx.index : run.readerIndex
  if (index === undefined) throw new Error('issueRead: a read through the reader-mode index, but the run has none (config.readerIndex)')
  const options = readOptionsOf(mode, after?.token)
  const request = settledCall<unknown>(() =>
    q.kind === 'getByMsgId'
      ? index.getByMsgId(run.topic, partition, q.msgId, options)
      : q.kind === 'getMsgIdBySegmentOffset'
        ? index.getMsgIdBySegmentOffset(run.topic, partition, q, options)
        : q.kind === 'getRangeByTime'
          ? index.getRangeByTime(run.topic, partition, q.startTs, q.endTs, options)
          : collect(index.scanByTime(run.topic, partition, q.startTs, q.endTs, q.limit === undefined ? options : { ...options, limit: q.limit })),
  )
  track(
    run,
    request.then(
      (answer) => ((rec.outcome = { answer }), model.closeRead(window)),
      (error: unknown) => ((rec.outcome = { error }), model.closeRead(window)),
    ),
    `${describeQuery(q)} on ${partition}`,
  )
}

/**
 * The supervision invariants that hold at every moment: at most one read-write handle per directory, and restarts
 * within the declared intensity (per index, shard and child kind; a recovery starts the count afresh). Throws a
 * {@link ModelViolation}.
 */
export const checkSupervision = (run: ModelRun): void => {
  if (run.ctx.faults.maxWritersPerDir > 1) throw new ModelViolation('writers', `${run.ctx.faults.maxWritersPerDir} read-write handles were open at once on one directory`)
  const restarts = new Map<string, number[]>()
  for (const { at, index, indexNumber, event } of run.ctx.events) {
    const kind = event.actor === 'primary' ? 'primary' : event.actor.startsWith('reader-') || event.actor === 'shard' ? 'readers' : undefined
    if (kind === undefined) continue
    // Each index has supervisors of its own (a reopened writer starts with no restart history).
    const key = `${indexNumber} ${event.shard} ${kind}`
    if (event.type === 'recovered') restarts.set(key, [])
    if (event.type !== 'restarted') continue
    const times = [...(restarts.get(key) ?? []), at]
    restarts.set(key, times)
    const { maxRestarts, withinMs } = run.intensity[kind]
    const inWindow = times.filter((t) => t > at - withinMs).length
    if (inWindow > maxRestarts) {
      throw new ModelViolation('intensity', `${inWindow} restarts of the ${kind} of ${event.shard} (${index}-mode index) within ${withinMs} ms, at most ${maxRestarts} allowed (restart times: ${times.join(', ')})`)
    }
  }
}

/** Checks every settled read against the model, every retention's count, and the problems found on the way. */
export const checkRun = (model: IndexModel, run: ModelRun): void => {
  if (run.problems.length > 0) throw run.problems[0]!
  for (const r of run.reads) {
    if (r.outcome === 'pending') throw new ModelViolation('stuck', `${describeQuery(r.query)} never settled`)
    if ('error' in r.outcome) {
      if (!isRockvisorError(r.outcome.error)) throw new ModelViolation('untyped-error', `${describeQuery(r.query)} failed with an untyped error: ${String(r.outcome.error)}`)
      if (r.outcome.error instanceof InvalidInput) throw new ModelViolation('invalid-input', `${describeQuery(r.query)} was refused as invalid: ${r.outcome.error.message}`)
      continue
    }
    const wrong = model.check(r.window, r.query, r.outcome.answer)
    if (wrong !== undefined) throw new ModelViolation('answer', `${wrong} [read through the ${r.mode.via}-mode index]`)
  }
  for (const { history } of model.partitions()) {
    for (const w of history) {
      const wrong = model.checkRetention(w)
      if (wrong !== undefined) throw new ModelViolation('retention', wrong)
    }
  }
}

/**
 * Lets every issued request settle: clears armed faults and advances the clock (20 ms a step) so that backoffs
 * elapse. A request still pending after {@link livenessMs} of wall time (a liveness guard on real I/O, not a timing
 * assertion) is a `stuck` violation.
 */
/**
 * How long (wall time) requests may take to settle before a run reports them `stuck`: generous, because real I/O on a
 * machine busy with other work (two test files at once on 2 cores, say) is slow, and a liveness guard must never fail
 * a correct run. A hang is still caught.
 */
const livenessMs = 30_000

export const drain = async (run: ModelRun): Promise<void> => {
  run.ctx.faults.clear()
  const deadline = Date.now() + livenessMs
  while (run.pending.size > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1))
    if (run.pending.size > 0) await run.ctx.clock.advance(20)
  }
  if (run.pending.size > 0) {
    const what = [...run.pending].slice(0, 5).map((p) => run.pendingWhat?.get(p) ?? 'a request')
    throw new ModelViolation('stuck', `${run.pending.size} requests never settled (${what.join('; ')}${run.pending.size > 5 ? '; ...' : ''}; stats: ${JSON.stringify(run.ctx.index.stats().totals)})`)
  }
}

const command = (name: string, body: (m: IndexModel, r: ModelRun) => void | Promise<void>): IndexCommand => ({
  check: () => true,
  run: async (m, r) => {
    if (r.armedCrashes !== undefined && r.armedCrashes.length > 0) {
      const armed = r.armedCrashes.splice(0)
      for (const crash of armed) if (!crashNow(r, crash)) r.armedCrashes.push(crash)
    }
    await body(m, r)
    // The real I/O the command started finishes; the scheduler then chooses between releasing its outcomes and the
    // next command. Without this the commands would all run (in microtasks) before any real call completed.
    await r.engine?.idle()
    checkSupervision(r)
  },
  toString: () => name,
})

/**
 * What a crash command breaks: the primary, every reader, or one reader, chosen when the command runs among the
 * readers open then (`{ reader: k }`: the k-th, modulo how many; reader ids change with every restart, so a name
 * drawn in advance would mostly break nothing).
 */
export type CrashChoice = 'primary' | 'readers' | { readonly reader: number }
const crashChoices: fc.Arbitrary<CrashChoice> = fc.oneof(fc.constant('primary' as const), fc.constant('readers' as const), fc.nat(7).map((reader) => ({ reader })))

/**
 * Lets the opens in progress reach RocksDB and finish there: each round waits for the real calls running (an open in
 * RocksDB; a directory check before it is real I/O too) and a turn, until no shard has a primary or a reader opening
 * or refreshing, or the scheduler holds an outcome. fast-check's scheduler releases nothing while a command runs (a
 * command is a scheduled task that it awaits whole), so an open whose outcome it holds completes only after the
 * command. Bounded: a primary waiting out a backoff on the manual clock never opens here.
 */
const letShardsOpen = async (r: ModelRun): Promise<void> => {
  const opening = (): boolean =>
    r.ctx.index.stats().shards.some((sh) => sh.primary === 'opening' || (sh.readers.opening ?? 0) > 0 || (sh.readers.refreshing ?? 0) > 0)
  for (let round = 0; round < 2_000 && (r.engine?.unreleased?.() ?? 0) === 0 && opening(); round++) {
    await (r.engine?.idle(1) ?? new Promise<void>((resolve) => setImmediate(resolve)))
  }
}

/**
 * Crashes `crash`'s target in the writer-mode index now, if it has one open: true when it broke a handle (or the
 * writer is closed for good).
 */
const crashNow = (r: ModelRun, { partition, choice }: ArmedCrash): boolean => {
  try {
    let target: CrashTarget = typeof choice === 'string' ? choice : 'readers'
    if (typeof choice !== 'string') {
      const id = r.ctx.index.locate(r.topic, partition).id
      const views = r.ctx.index.stats().shards.find((sh) => sh.id === id)?.views ?? []
      if (views.length === 0) return false
      target = views[choice.reader % views.length]!.reader as CrashTarget
    }
    return r.ctx.index.faults.crash(r.topic, partition, target) > 0
  } catch (e) {
    // The writer may be closing (close and reopen): a typed Closed error is the contract; the crash waits for the
    // reopened writer.
    if (!isRockvisorError(e)) throw e
    return r.reopening === undefined
  }
}

/** The (op, role) pairs a fail-next command arms: every engine call a role makes (readers never write). */
const failNextTargets = [
  ['open', 'primary'],
  ['open', 'reader'],
  ['read', 'primary'],
  ['read', 'reader'],
  ['write', 'primary'],
] as const

/** The read modes a run draws from (reader-mode ones only with a reader-mode index). */
const readMode = (withReader: boolean): fc.Arbitrary<ReadMode> =>
  fc.oneof(
    fc.constantFrom<ReadMode>({ via: 'writer', consistency: 'fresh' }, { via: 'writer', consistency: 'primary' }),
    fc.record({
      via: withReader ? fc.constantFrom('writer' as const, 'reader' as const) : fc.constant('writer' as const),
      consistency: fc.constant('bounded' as const),
      maxStalenessMs: fc.constantFrom(0, 100, 1_000, 10_000),
    }),
    ...(withReader ? [fc.constant<ReadMode>({ via: 'reader', consistency: 'after' })] : []),
  )

/**
 * The command arbitraries of a model run (pass them to `fc.commands`): batch writes, retention, single reads and
 * bursts of reads (the pool may scale up), crashes, failures of the next opens/reads/writes, clock advances,
 * `recover()`, and (unless `config.reopen` is false) closing and reopening the writer.
 */
export const indexCommands = (config: ModelRunConfig = {}): fc.Arbitrary<IndexCommand>[] => {
  const partitions = config.partitions ?? [0, 1, 2, 3]
  const domain = resolveDomain(config.domain)
  const partitionArb = fc.constantFrom(...partitions)
  const mode = readMode(config.readerIndex ?? true)
  const maxTimestamp = domain.maxTimestamp
  const write = fc
    .tuple(partitionArb, collidingBatch(domain))
    .map(([p, metas]) => command(`batchPut(${p}, ${describeMetas(metas)})`, (m, r) => issueWrite(m, r, p, { kind: 'batchPut', metas })))
  const read = fc
    .tuple(partitionArb, query(domain), mode)
    .map(([p, q, md]) => command(`${describeQuery(q)} on ${p} (${md.via}, ${md.consistency === 'bounded' ? `bounded ${md.maxStalenessMs} ms` : md.consistency})`, (m, r) => issueRead(m, r, p, q, md)))
  const crash = fc.tuple(partitionArb, crashChoices).map(([partition, choice]) =>
    command(`crash ${typeof choice === 'string' ? choice : `reader #${choice.reader}`} of ${partition}`, async (_m, r) => {
      if (crashNow(r, { partition, choice })) return
      await letShardsOpen(r)
      // A shard that has nothing to crash yet (its open waits for the scheduler, or no request reached it) gets the
      // crash at the start of a later command: the scheduler releases held outcomes only between commands.
      if (!crashNow(r, { partition, choice })) r.armedCrashes?.push({ partition, choice })
    }),
  )
  const failNext = fc
      .tuple(fc.constantFrom(...failNextTargets), fc.integer({ min: 1, max: 3 }))
      .map(([[op, role], n]) => command(`fail next ${n} ${role} ${op}s`, (_m, r) => r.ctx.faults.failNext(op, n, { role })))
  // fc.commands draws each arbitrary of the list equally often: writes and reads are listed three times, so that
  // most commands are requests.
  const list: fc.Arbitrary<IndexCommand>[] = [
    write,
    write,
    write,
    read,
    read,
    read,
    fc
      .tuple(partitionArb, fc.integer({ min: 0, max: maxTimestamp + 1 }))
      .map(([p, before]) => command(`deleteBefore(${p}, ${before})`, (m, r) => issueWrite(m, r, p, { kind: 'deleteBefore', before }))),
    fc
      .tuple(partitionArb, fc.array(fc.tuple(query(domain), mode), { minLength: 3, maxLength: 12 }))
      .map(([p, reads]) => command(`burst of ${reads.length} reads on ${p}`, (m, r) => reads.forEach(([q, md]) => issueRead(m, r, p, q, md)))),
    ...Array.from({ length: config.faultWeight ?? 1 }, () => crash),
    ...Array.from({ length: config.faultWeight ?? 1 }, () => failNext),
    fc.integer({ min: 1, max: 5_000 }).map((ms) => command(`advance clock ${ms} ms`, (_m, r) => r.ctx.clock.advance(ms))),
    // The real I/O before an open (directory checks) takes longer than a run's commands: without this most runs
    // ended their commands before any open reached RocksDB (see letShardsOpen).
    ...Array.from({ length: config.faultWeight ?? 1 }, () =>
      fc.constant(
        command('let the shards open (their real I/O runs until no open is in progress or the scheduler holds its outcome)', (_m, r) => letShardsOpen(r)),
      ),
    ),
    fc.constant(command('recover', (_m, r) => r.ctx.index.recover())),
  ]
  if (config.reopen ?? true) {
    list.push(
      fc.constant(
        command('close the writer (requests in flight complete or fail with Closed) and reopen it (once per run)', async (_m, r) => {
          // Once per run, so that most requests meet a live writer.
          if (r.reopening !== undefined || r.reopened) return
          r.reopened = true
          const old = r.ctx.index
          const reopening = r.ctx.reopen().then(() => {
            if (old.stats().totals.handles !== 0) r.problems.push(new ModelViolation('leak', `a closed index still holds ${old.stats().totals.handles} handles`))
          })
          r.reopening = reopening
          track(
            r,
            reopening.finally(() => (r.reopening = undefined)),
            'the close and reopen of the writer',
          )
          // Usually done within a few turns of real I/O; a close waiting for a backoff needs later clock advances.
          await Promise.race([reopening.catch(() => undefined), r.engine?.idle(12)])
        }),
      ),
    )
  }
  return list
}

/** The restart intensities a run's options declare (defaults applied). */
const intensityOf = (options: ModelRunConfig['options'], root: string): ModelRun['intensity'] => {
  const policy = resolveOptions({ ...options, root }).policy
  return { primary: policy.primary.intensity, readers: policy.readers.intensity }
}

/** Liveness guard (wall time, not a timing assertion): a `stuck` violation if `p` has not settled within {@link livenessMs}. */
const withinWallTime = <T>(p: Promise<T>, what: string): Promise<T> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const guard = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new ModelViolation('stuck', `${what} never finished`)), livenessMs)))
  return Promise.race([p, guard]).finally(() => clearTimeout(timer))
}

/**
 * Runs `cmds` once against a fresh temporary index (see `withTempIndex`) on real RocksDB whose engine calls `s`
 * releases: opens the writer-mode index (and a reader-mode one), runs the commands with `fc.scheduledModelRun`,
 * drains, checks every answer, closes (checking that no handle is left) and reopens the root to check that every
 * acknowledged write survived. Rejects with a {@link ModelViolation} (or the error a command threw); always removes
 * the root.
 */
export const runIndexModel = async (s: fc.Scheduler, cmds: Iterable<IndexCommand>, config: ModelRunConfig = {}): Promise<RunSummary> => {
  const options = config.options ?? modelRunOptions
  // (A storage engine the config gives, a wrapper of the real one, runs under the scheduler too.)
  const engine = scheduledEngine(s, config.engine ?? rocksEngine)
  return withTempIndex({ ...options, engine, waitFor: (p) => s.waitFor(p) }, async (_index, ctx) => {
    const model = new IndexModel()
    const run: ModelRun = {
      ctx,
      topic: config.topic ?? 't',
      partitions: config.partitions ?? [0, 1, 2, 3],
      intensity: intensityOf(options, ctx.root),
      readerIndex: (config.readerIndex ?? true) ? await ctx.openReader() : undefined,
      reads: [],
      pending: new Set(),
      pendingWhat: new WeakMap(),
      problems: [],
      reopening: undefined,
      reopened: false,
      armedCrashes: [],
      engine,
    }
    await fc.scheduledModelRun(s, () => ({ model, real: run }), cmds)
    await s.waitFor(drain(run))
    checkRun(model, run)
    checkSupervision(run)
    const indexes = [ctx.index, ...(run.readerIndex ? [run.readerIndex] : [])]
    await s.waitFor(withinWallTime(Promise.all(indexes.map((i) => i.close())), 'closing the indexes'))
    if (ctx.faults.liveHandles !== 0) throw new ModelViolation('leak', `${ctx.faults.liveHandles} native handles open after close`)
    // Every acknowledged write survives: a fresh index on the same root (unscheduled) answers like the model.
    const reopened = await openIndex({ ...options, root: ctx.root })
    const d = resolveDomain(config.domain)
    const { segments, offsets } = d
    const domain = {
      msgIds: d.msgIds,
      // (At most 64 places are checked: a domain of many more is sampled by its first ones.)
      places: Array.from({ length: Math.min(64, segments * offsets) }, (_, k) => ({ segmentId: Math.floor(k / offsets), offset: k % offsets })),
    }
    try {
      for (const { topic, partition } of model.partitions()) {
        const got = await collect(reopened.scanByTime(topic, partition, 0, Number.MAX_SAFE_INTEGER))
        const states = model.statesAfter(topic, partition)
        const matching = states.filter((state) => deepEqual(got, state.metas('byTime')))
        if (matching.length === 0) {
          throw new ModelViolation('lost-write', `${topic}/${partition} holds ${describeMetas(got)} after reopening; the model: ${states.map((state) => describeMetas(state.metas('byTime'))).join(' or ')}`)
        }
        // The other two views hold the same state: every msgId and every place of the domain answers as it does.
        const byId = await Promise.all(domain.msgIds.map((msgId) => reopened.getByMsgId(topic, partition, msgId, { consistency: 'primary' })))
        const byPlace = await Promise.all(domain.places.map((so) => reopened.getMsgIdBySegmentOffset(topic, partition, so, { consistency: 'primary' })))
        const agrees = (state: (typeof states)[number]): boolean =>
          domain.msgIds.every((msgId, i) => deepEqual(byId[i], state.getByMsgId(msgId))) && domain.places.every((so, i) => byPlace[i] === state.getMsgIdBySegmentOffset(so))
        if (!matching.some(agrees)) {
          const views = domain.msgIds.map((msgId, i) => `${msgId}: ${byId[i] === undefined ? 'none' : describeMetas([byId[i]!])}`).join(', ')
          throw new ModelViolation('lost-write', `${topic}/${partition} after reopening: its time view holds ${describeMetas(got)}, but by msgId ${views}; by place ${JSON.stringify(byPlace)}`)
        }
      }
    } finally {
      await reopened.close()
    }
    const writes = model.partitions().flatMap((p) => p.history)
    return {
      writes: { ok: writes.filter((w) => w.outcome === 'ok').length, failed: writes.filter((w) => w.outcome === 'failed').length },
      reads: { answered: run.reads.filter((r) => r.outcome !== 'pending' && 'answer' in r.outcome).length, failed: run.reads.filter((r) => r.outcome !== 'pending' && 'error' in r.outcome).length },
      restarts: ctx.events.filter((e) => e.event.type === 'restarted').length,
      failures: ctx.events.filter((e) => e.event.type === 'failed' && e.event.actor !== 'shard').length,
      exhausted: ctx.events.filter((e) => (e.event.type === 'failed' && e.event.actor === 'shard') || e.event.type === 'degraded').length,
      injected: ctx.faults.injected.open + ctx.faults.injected.read + ctx.faults.injected.write,
      crashes: ctx.events.filter((e) => e.event.type === 'failed' && e.event.detail?.includes('injected crash') === true).length,
    }
  })
}

/** What one run did (to check that runs exercise the system, not only that they pass). */
export interface RunSummary {
  readonly writes: { readonly ok: number; readonly failed: number }
  readonly reads: { readonly answered: number; readonly failed: number }
  /** `restarted` lifecycle events (primaries and readers, both indexes). */
  readonly restarts: number
  /** Failures of primaries and readers (`failed` lifecycle events of a child). */
  readonly failures: number
  /** Escalations: a shard giving up on its primary, or its pool degraded (restart intensity exhausted). */
  readonly exhausted: number
  /** Failures the fault injector injected (crashes not counted). */
  readonly injected: number
  /** Handles the crash commands broke (each a `failed` event of a primary or reader). */
  readonly crashes: number
}

/**
 * The whole model-based property: a fast-check scheduler and up to `config.maxCommands` (default 40) commands of
 * {@link indexCommands}, each run by {@link runIndexModel}. Pass it to `fc.assert` (or `fc.check`). Every run opens
 * its own temporary root, so runs leave nothing behind.
 */
export const indexModelProperty = (config: ModelRunConfig = {}): fc.IAsyncPropertyWithHooks<[fc.Scheduler, Iterable<IndexCommand>]> =>
  fc.asyncProperty(
    fc.scheduler(),
    fc.commands(indexCommands(config), { maxCommands: config.maxCommands ?? 40, size: 'medium', ...(config.replayPath === undefined ? {} : { replayPath: config.replayPath }) }),
    async (s, cmds) => {
      const summary = await runIndexModel(s, cmds, config)
      config.onRun?.(summary)
    },
  )

