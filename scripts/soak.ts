/**
 * `npm run soak -- --minutes N` (or `--seconds N`; `--seed S` to replay a run's choices; `--keep` to keep the temp
 * root): for as long as asked, tries hard to make rockvisor give a wrong answer, then prints a summary table.
 *
 * - Writer processes (scripts/soak-writer.ts), one at a time on one temp root, write batches with tiny flush
 *   triggers, read their own acknowledged writes back and inject faults on themselves; each prints one line per
 *   acknowledged batch. This process SIGKILLs the writer at random moments (sometimes while it starts), or now and
 *   then asks it to close cleanly (its native handles must then be 0), and starts the next one once the previous
 *   one is dead (RocksDB's lock).
 * - This process keeps the model of acknowledged writes (compact: a few numbers per batch; the metas are a pure
 *   function of them, see soak-model.ts) and checks it through a reader-mode index on the same root: continuously
 *   (random acknowledged metas, `after` their token), and after each kill, once the next writer is up (the last
 *   batches of the killed writer in full and a sample of the older ones, `after` the newest token of their shard):
 *   a miss there is a lost acknowledged meta. It also injects faults on its reader-mode index and closes and reopens
 *   it now and then (its native handles must then be 0).
 *
 * Exit code 0 only if there were no wrong answers, lost acknowledged metas, untyped errors, handles left after a
 * close, stuck reads (> 10 s) or hung closes. Progress goes to stderr every ~10 s; the summary to stdout.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { FaultInjector, openIndex, type Index, type MessageMeta } from '../src/index.js'
import {
  addCounters,
  addEngineCounts,
  bounded,
  describeError,
  engineCounts,
  integrityOf,
  metaOf,
  newCounters,
  partitions,
  Rng,
  sameMeta,
  sleep,
  stuckMs,
  tagOf,
  timestampOf,
  topics,
  type Counters,
  type WriterLine,
} from './soak-model.js'

// ---------------------------------------------------------------------------------------------------------------
// Arguments

const usage = 'usage: npm run soak -- (--minutes N | --seconds N) [--seed S] [--keep]'
const parseArgs = (argv: readonly string[]): { durationMs: number; seed: number; keep: boolean } => {
  let durationMs = 60_000
  let seed = (Date.now() ^ (process.pid << 16)) >>> 0
  let keep = false
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const value = (): number => {
      const v = Number(argv[++i])
      if (!Number.isFinite(v) || v < 0) fail(`${a} needs a number >= 0`)
      return v
    }
    if (a === '--minutes') durationMs = value() * 60_000
    else if (a === '--seconds') durationMs = value() * 1_000
    else if (a === '--seed') seed = Math.floor(value()) >>> 0
    else if (a === '--keep') keep = true
    else if (a === '--help' || a === '-h') {
      console.log(usage)
      process.exit(0)
    } else fail(`unknown argument ${a}`)
  }
  return { durationMs, seed, keep }
}
const fail = (why: string): never => {
  console.error(`soak: ${why}\n${usage}`)
  process.exit(2)
}

const { durationMs, seed, keep } = parseArgs(process.argv.slice(2))
const rng = new Rng(seed)
const here = dirname(fileURLToPath(import.meta.url))
const repo = join(here, '..')
const t0 = performance.now()
const elapsed = (): number => performance.now() - t0
const progress = (line: string): void => void process.stderr.write(`[soak ${(elapsed() / 1000).toFixed(1)}s] ${line}\n`)

// ---------------------------------------------------------------------------------------------------------------
// The model of acknowledged writes: one row per acknowledged batch, in typed arrays (22 bytes a batch).

class AckLog {
  size = 0
  metas = 0
  #cap = 4_096
  gen = new Int32Array(this.#cap)
  n = new Int32Array(this.#cap)
  c = new Uint8Array(this.#cap)
  tp = new Uint8Array(this.#cap)
  p = new Uint8Array(this.#cap)
  shard = new Uint16Array(this.#cap)
  seq = new Float64Array(this.#cap)
  /** Shard ids (the token's prefix), interned. */
  readonly shardIds: string[] = []
  readonly #shardIndex = new Map<string, number>()
  /** Newest acknowledged sequence per interned shard. */
  newest: number[] = []

  add(gen: number, line: { tp: number; p: number; n: number; c: number; tok: string }): void {
    if (this.size === this.#cap) this.#grow()
    const at = line.tok.lastIndexOf('@')
    const id = line.tok.slice(0, at)
    const seq = Number(line.tok.slice(at + 1))
    let s = this.#shardIndex.get(id)
    if (s === undefined) {
      s = this.shardIds.push(id) - 1
      this.#shardIndex.set(id, s)
      this.newest.push(0)
    }
    const b = this.size++
    this.gen[b] = gen
    this.n[b] = line.n
    this.c[b] = line.c
    this.tp[b] = line.tp
    this.p[b] = line.p
    this.shard[b] = s
    this.seq[b] = seq
    this.newest[s] = Math.max(this.newest[s]!, seq)
    this.metas += line.c
  }

  topic(b: number): string {
    return topics[this.tp[b]!]!
  }
  meta(b: number, i: number): MessageMeta {
    return metaOf(this.gen[b]!, this.n[b]! + i)
  }
  token(b: number): string {
    return `${this.shardIds[this.shard[b]!]}@${this.seq[b]}`
  }
  newestToken(b: number, newest: readonly number[] = this.newest): string {
    return `${this.shardIds[this.shard[b]!]}@${newest[this.shard[b]!]}`
  }
  where(b: number, i: number): string {
    return `${this.topic(b)}/${this.p[b]} g${this.gen[b]} n ${this.n[b]! + i} (batch of ${this.c[b]}, ${this.token(b)})`
  }

  #grow(): void {
    this.#cap *= 2
    const grow = <T extends Int32Array | Uint8Array | Uint16Array | Float64Array>(a: T, make: (n: number) => T): T => {
      const b = make(this.#cap)
      b.set(a)
      return b
    }
    this.gen = grow(this.gen, (n) => new Int32Array(n))
    this.n = grow(this.n, (n) => new Int32Array(n))
    this.c = grow(this.c, (n) => new Uint8Array(n))
    this.tp = grow(this.tp, (n) => new Uint8Array(n))
    this.p = grow(this.p, (n) => new Uint8Array(n))
    this.shard = grow(this.shard, (n) => new Uint16Array(n))
    this.seq = grow(this.seq, (n) => new Float64Array(n))
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Counters

/** This process's reads, faults and errors (its reader-mode index). */
const mine = newCounters()
/** The last counters of every writer that ended, summed; the running writer's are added when reported. */
const endedWriters = newCounters()
/** Integrity and engine counters of the reader-mode indexes already closed. */
const closedReaders = { tornViews: 0, corruptReads: 0, engine: newCounters().engine }
const run = {
  lost: 0,
  verified: 0,
  unverified: 0,
  handlesAfterClose: 0,
  hungCloses: 0,
  kills: 0,
  killsBeforeUp: 0,
  cleanCloses: 0,
  writers: 0,
  unexpectedExits: 0,
  partialLines: 0,
  readerReopens: 0,
}
const details: string[] = []
const detail = (text: string): void => {
  if (details.length < 40) details.push(text.slice(0, 2_000))
}
/** Typed errors the soak did not inject (not failures, but worth a look). */
const notes: string[] = []
const note = (text: string): void => {
  if (notes.length < 20) notes.push(text.slice(0, 600))
}

const model = new AckLog()

// ---------------------------------------------------------------------------------------------------------------
// Writer processes

interface Writer {
  readonly gen: number
  readonly proc: ChildProcess
  readonly spawnedAt: number
  isUp: boolean
  last: Counters
  closedLine?: { liveHandles: number; tableHandles: number }
  readonly up: Promise<void>
  readonly firstAck: Promise<void>
  /** Stdout fully read and the process gone. */
  readonly done: Promise<void>
}

let root = ''
let stderrLines = 0

const spawnWriter = (gen: number): Writer => {
  run.writers++
  const proc = spawn(process.execPath, ['--import', 'tsx', join(here, 'soak-writer.ts'), root, String(gen), String(rng.seed())], {
    cwd: repo,
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  // Writing "close" to a writer that just died must not kill us.
  proc.stdin!.on('error', () => {})
  let upResolve = (): void => {}
  let ackResolve = (): void => {}
  const w: Writer = {
    gen,
    proc,
    spawnedAt: elapsed(),
    isUp: false,
    last: newCounters(),
    up: new Promise<void>((r) => (upResolve = r)),
    firstAck: new Promise<void>((r) => (ackResolve = r)),
    done: Promise.resolve(),
  }
  const lines = createInterface({ input: proc.stdout! })
  lines.on('line', (text) => {
    let line: WriterLine
    try {
      line = JSON.parse(text) as WriterLine
    } catch {
      // A line cut by SIGKILL: never acknowledged.
      run.partialLines++
      return
    }
    switch (line.t) {
      case 'up':
        w.isUp = true
        upResolve()
        break
      case 'ack':
        model.add(gen, line)
        ackResolve()
        break
      case 'stats': {
        const { t: _, ...counters } = line
        w.last = counters
        break
      }
      case 'detail':
        if (line.kind === 'note') note(line.text)
        else detail(`${line.kind}: ${line.text}`)
        break
      case 'closed':
        w.closedLine = { liveHandles: line.liveHandles, tableHandles: line.tableHandles }
        break
    }
  })
  createInterface({ input: proc.stderr! }).on('line', (text) => {
    if (stderrLines++ < 200) process.stderr.write(`[writer g${gen}] ${text}\n`)
  })
  const exited = new Promise<void>((resolve) =>
    proc.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL' && code !== 0) {
        run.unexpectedExits++
        detail(`untyped: writer g${gen} exited on its own (code ${code}, signal ${signal})`)
      }
      resolve()
    }),
  )
  const drained = new Promise<void>((resolve) => lines.on('close', resolve))
  ;(w as { done: Promise<void> }).done = Promise.all([exited, drained]).then(() => {
    upResolve()
    ackResolve()
  })
  return w
}

/** Asks the writer to close cleanly; checks it left no native handle open. */
const closeWriter = async (w: Writer): Promise<void> => {
  w.proc.stdin!.end('close\n')
  const outcome = await Promise.race([w.done.then(() => 'done' as const), sleep(40_000).then(() => 'hung' as const)])
  if (outcome === 'hung') {
    run.hungCloses++
    detail(`hung close: writer g${w.gen} did not close within 40 s; killed`)
    w.proc.kill('SIGKILL')
    await w.done
    return
  }
  run.cleanCloses++
  if (w.closedLine === undefined) {
    if (w.isUp) detail(`writer g${w.gen} exited without reporting its handles after close`)
  } else if (w.closedLine.liveHandles !== 0 || w.closedLine.tableHandles !== 0) {
    run.handlesAfterClose += Math.max(w.closedLine.liveHandles, w.closedLine.tableHandles)
    detail(`handles after close: writer g${w.gen} left ${w.closedLine.liveHandles} native handles open (handle table: ${w.closedLine.tableHandles})`)
  }
}

const killWriter = async (w: Writer): Promise<void> => {
  if (!w.isUp) run.killsBeforeUp++
  w.proc.kill('SIGKILL')
  run.kills++
  await w.done
}

// ---------------------------------------------------------------------------------------------------------------
// The reader-mode index of this process

interface ReaderIndex {
  readonly index: Index
  readonly engine: FaultInjector
}
let reader: ReaderIndex | undefined

const openReader = async (): Promise<ReaderIndex> => {
  const engine = new FaultInjector()
  const index = await openIndex({ root, mode: 'reader', engine, readers: { min: 1, max: 3 } })
  index.subscribe((e) => {
    if ((e.type as string) === 'torn-view') mine.tornEvents++
  })
  return { index, engine }
}

/** Closes the reader-mode index (its native handles must then be 0) and, unless `final`, opens a new one. */
const reopenReader = async (final = false): Promise<void> => {
  const old = reader
  reader = undefined
  if (old !== undefined) {
    const integrity = integrityOf(old.index.stats().shards)
    closedReaders.tornViews += integrity.tornViews
    closedReaders.corruptReads += integrity.corruptReads
    try {
      await old.index.close()
    } catch (e) {
      failure(old, 'reader-mode close', e)
    }
    addEngineCounts(closedReaders.engine, engineCounts(old.engine))
    if (old.engine.liveHandles !== 0) {
      run.handlesAfterClose += old.engine.liveHandles
      detail(`handles after close: the reader-mode index left ${old.engine.liveHandles} native handles open`)
    }
  }
  if (!final) {
    reader = await openReader()
    run.readerReopens++
  }
}

/** Counts an error of this process: typed by tag (not a failure), untyped as a failure. */
const failure = (r: ReaderIndex, what: string, e: unknown): string | undefined => {
  const tag = tagOf(e)
  if (tag === undefined) {
    mine.untyped++
    detail(`untyped: ${what}: ${describeError(e)}`)
    return undefined
  }
  mine.typed[tag] = (mine.typed[tag] ?? 0) + 1
  // Closed is expected from an index this process is closing (reopen); injected failures are expected.
  const expected = tag === 'StorageFailure(injected)' || tag === 'InvalidInput' || (tag === 'Closed' && r !== reader)
  if (!expected) note(`reader-mode ${what}: ${(e as Error).message}`)
  if (tag === 'ShardUnavailable') r.index.recover()
  return tag
}

// ---------------------------------------------------------------------------------------------------------------
// Checks

let stopping = false

/** (a) One continuous check: a random acknowledged meta, read `after` a token that covers it. */
const checkOnce = async (): Promise<void> => {
  const r = reader
  if (r === undefined || model.size === 0) return sleep(20)
  const b = rng.chance(0.5) ? model.size - 1 - rng.int(Math.min(model.size, 64)) : rng.int(model.size)
  const c = model.c[b]!
  const i = rng.int(c)
  const want = model.meta(b, i)
  const topic = model.topic(b)
  const p = model.p[b]!
  const gen = model.gen[b]!
  const n = model.n[b]! + i
  const after = rng.chance(0.7) ? model.token(b) : model.newestToken(b)
  const where = `${model.where(b, i)} after ${after}`
  const op = rng.int(10)
  const wrong = (text: string): void => {
    mine.wrong++
    detail(`wrong: reader-mode ${text}`)
  }
  mine.reads++
  const outcome = await bounded(async () => {
    try {
      if (op < 5) {
        const got = await r.index.getByMsgId(topic, p, want.msgId, { after })
        if (!sameMeta(got, want)) wrong(`getByMsgId ${where}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
      } else if (op < 7) {
        const got = await r.index.getMsgIdBySegmentOffset(topic, p, { segmentId: gen, offset: n }, { after })
        if (got !== want.msgId) wrong(`getMsgIdBySegmentOffset ${where}: got ${JSON.stringify(got)}, want ${want.msgId}`)
      } else if (op < 9) {
        const j = i + rng.int(c - i)
        const got = await r.index.getRangeByTime(topic, p, want.timestamp, timestampOf(gen, model.n[b]! + j), { after })
        const ok = got?.first.segmentId === gen && got.first.offset === n && got.last.segmentId === gen && got.last.offset === model.n[b]! + j
        if (!ok) wrong(`getRangeByTime ${where} to n ${model.n[b]! + j}: got ${JSON.stringify(got)}`)
      } else {
        const first = model.n[b]!
        const got: MessageMeta[] = []
        for await (const m of r.index.scanByTime(topic, p, timestampOf(gen, first), timestampOf(gen, first + c - 1), { after })) got.push(m)
        if (got.length !== c || !got.every((m, k) => sameMeta(m, metaOf(gen, first + k)))) {
          wrong(`scanByTime ${where}: got offsets ${JSON.stringify(got.map((m) => m.offset))}, want ${first}..${first + c - 1}`)
        }
      }
    } catch (e) {
      // A token of an acknowledged write that the data never reaches: the write is not there.
      if (failure(r, `reader-mode read ${where}`, e) === 'InvalidInput') wrong(`read ${where}: InvalidInput: ${(e as Error).message}`)
    }
  })
  if (outcome === 'stuck') {
    mine.stuck++
    detail(`stuck: reader-mode read op ${op} ${where} took more than ${stuckMs / 1000} s`)
  }
}

/**
 * (b) One acknowledged meta must be readable through the reader-mode index, `after` the newest token of its shard
 * when the check began: a miss (or a token the data never reaches) is a lost acknowledged meta. Injected failures and
 * a reopen on the way are retried a few times; a meta still not read then is "unverified".
 */
const verifyMeta = async (b: number, i: number, newest: readonly number[], why: string): Promise<void> => {
  const want = model.meta(b, i)
  const after = model.newestToken(b, newest)
  const where = `${model.where(b, i)} after ${after} (${why})`
  for (let attempt = 0; attempt < 5; attempt++) {
    const r = reader
    if (r === undefined) {
      await sleep(50)
      continue
    }
    let verdict: 'ok' | 'retry' | 'judged' = 'retry'
    mine.reads++
    const outcome = await bounded(async () => {
      try {
        const got = await r.index.getByMsgId(model.topic(b), model.p[b]!, want.msgId, { after })
        verdict = 'judged'
        run.verified++
        if (sameMeta(got, want)) verdict = 'ok'
        else if (got === undefined) {
          run.lost++
          detail(`lost: acknowledged ${where}: missing`)
        } else {
          mine.wrong++
          detail(`wrong: acknowledged ${where}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
        }
      } catch (e) {
        const tag = failure(r, `verification read ${where}`, e)
        if (tag === 'InvalidInput') {
          verdict = 'judged'
          run.verified++
          run.lost++
          detail(`lost: acknowledged ${where}: ${(e as Error).message}`)
        } else if (tag === undefined) verdict = 'judged'
      }
    })
    if (outcome === 'stuck') {
      mine.stuck++
      detail(`stuck: verification read ${where} took more than ${stuckMs / 1000} s`)
      return
    }
    if (verdict !== 'retry') return
    await sleep(50)
  }
  run.unverified++
}

/** Runs `tasks` with `concurrency` at once. */
const pool = async (tasks: readonly (() => Promise<void>)[], concurrency: number): Promise<void> => {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < tasks.length) await tasks[next++]!()
  }))
}

/** The batches to verify: every meta of the last `tail` batches of `gen`, and one meta of up to `sample` others. */
const verifyBatches = async (size: number, newest: readonly number[], gen: number | undefined, tail: number, sample: number, why: string): Promise<void> => {
  const tasks: (() => Promise<void>)[] = []
  const full = new Set<number>()
  for (let b = size - 1; b >= 0 && full.size < tail && (gen === undefined || model.gen[b]! >= gen); b--) if (gen === undefined || model.gen[b] === gen) full.add(b)
  for (const b of full) for (let i = 0; i < model.c[b]!; i++) tasks.push(() => verifyMeta(b, i, newest, why))
  const others = size - full.size
  if (others > 0) {
    for (let k = 0; k < Math.min(sample, others); k++) {
      let b = rng.int(size)
      while (full.has(b)) b = rng.int(size)
      const i = rng.int(model.c[b]!)
      tasks.push(() => verifyMeta(b, i, newest, why))
    }
  }
  await pool(tasks, 6)
}

/** Runs `body` until the soak stops, pausing a little now and then (the writers share the CPU). */
const loop = async (body: () => Promise<void>): Promise<void> => {
  while (!stopping) {
    await body()
    if (rng.chance(0.3)) await sleep(rng.int(3))
  }
}

/** Faults on the reader-mode index now and then. */
const readerFaults = async (): Promise<void> => {
  await sleep(rng.between(1_000, 4_000))
  const r = reader
  if (r === undefined || stopping) return
  const topic = rng.pick(topics)
  const p = rng.int(partitions)
  const x = rng.next()
  if (x < 0.4) r.index.faults.crash(topic, p, 'readers')
  else if (x < 0.7) r.index.faults.failNext('read', 1, { dir: r.index.locate(topic, p).dir })
  else r.index.faults.failNext('open', 1, { role: 'reader' })
  mine.faults++
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting

const writerTotals = (current: Writer | undefined): Counters => {
  const t = newCounters()
  addCounters(t, endedWriters)
  if (current !== undefined) addCounters(t, current.last)
  return t
}

const readerIntegrity = () => {
  const live = reader === undefined ? { tornViews: 0, corruptReads: 0 } : integrityOf(reader.index.stats().shards)
  const engine = { ...closedReaders.engine }
  if (reader !== undefined) addEngineCounts(engine, engineCounts(reader.engine))
  return { tornViews: closedReaders.tornViews + live.tornViews, corruptReads: closedReaders.corruptReads + live.corruptReads, engine }
}

const totals = (current: Writer | undefined) => {
  const w = writerTotals(current)
  const ri = readerIntegrity()
  const typed: Record<string, number> = { ...w.typed }
  for (const [k, v] of Object.entries(mine.typed)) typed[k] = (typed[k] ?? 0) + v
  return {
    reads: w.reads + mine.reads,
    wrong: w.wrong + mine.wrong,
    lost: run.lost,
    untyped: w.untyped + mine.untyped + run.unexpectedExits,
    stuck: w.stuck + mine.stuck,
    handlesAfterClose: run.handlesAfterClose,
    hungCloses: run.hungCloses,
    tornViews: w.tornViews + ri.tornViews,
    corruptReads: w.corruptReads + ri.corruptReads,
    tornEvents: w.tornEvents + mine.tornEvents,
    faults: w.faults + mine.faults,
    typed,
    writer: w,
    readerEngine: ri.engine,
  }
}

let current: Writer | undefined
const progressLine = (): void => {
  const t = totals(current)
  progress(
    `writer g${current?.gen ?? '-'} | acked ${model.metas} metas in ${model.size} batches | reads ${t.reads} | wrong ${t.wrong} | lost ${t.lost} | ` +
      `untyped ${t.untyped} | stuck ${t.stuck} | handles after close ${t.handlesAfterClose} | torn views ${t.tornViews} | kills ${run.kills} | ` +
      `faults ${t.faults} | rss ${Math.round(process.memoryUsage().rss / 2 ** 20)} MB`,
  )
}

const summary = (aborted?: string): number => {
  const t = totals(current)
  const failures: [string, number][] = [
    ['wrong answers', t.wrong],
    ['lost acknowledged metas', t.lost],
    ['untyped errors', t.untyped],
    ['handles after close', t.handlesAfterClose],
    ['stuck reads', t.stuck],
    ['hung closes', t.hungCloses],
  ]
  const rows: [string, string, string][] = [
    ['reads (writers + reader-mode index)', String(t.reads), `${t.writer.reads} + ${mine.reads}`],
    ['wrong answers', String(t.wrong), 'FAILS the run if > 0'],
    ['lost acknowledged metas', String(t.lost), `FAILS if > 0; ${run.verified} metas verified after kills and at the end, ${run.unverified} unverified (retries exhausted)`],
    ['torn views caught', String(t.tornViews), `stats integrity.tornViews, last value per index, summed; corrupt reads ${t.corruptReads}; torn-view events ${t.tornEvents}`],
    ['untyped errors', String(t.untyped), `FAILS if > 0 (includes ${run.unexpectedExits} writers that died on their own)`],
    ['handles after close', String(t.handlesAfterClose), `FAILS if > 0 (${run.cleanCloses} clean writer closes, ${run.readerReopens + 1} reader-mode closes)`],
    ['stuck reads (> 10 s)', String(t.stuck), 'FAILS if > 0'],
    ['hung closes (> 40 s)', String(t.hungCloses), 'FAILS if > 0'],
    ['writes acknowledged', `${model.metas} metas`, `${model.size} batches, ${run.writers} writer processes`],
    ['writer kills (SIGKILL)', String(run.kills), `${run.killsBeforeUp} before the index opened; ${run.partialLines} partial lines dropped`],
    [
      'injected faults',
      String(t.faults),
      `writers ${t.writer.faults}, reader-mode index ${mine.faults} (crashes and failNext calls); failures the engines injected: ` +
        `${t.writer.engine.injected} + ${t.readerEngine.injected}`,
    ],
    [
      'engine calls',
      String(t.writer.engine.readerReads + t.writer.engine.primaryReads + t.readerEngine.readerReads),
      `reads that reached a handle: writers ${t.writer.engine.readerReads} on readers, ${t.writer.engine.primaryReads} on primaries; ` +
        `reader-mode ${t.readerEngine.readerReads}; opens: writers ${t.writer.engine.opens}, reader-mode ${t.readerEngine.opens}`,
    ],
    ['typed errors', String(Object.values(t.typed).reduce((a, b) => a + b, 0)), 'by tag below (not failures, except InvalidInput, counted as wrong answers)'],
    ...Object.entries(t.typed)
      .sort()
      .map(([k, v]): [string, string, string] => [`  ${k}`, String(v), '']),
  ]
  const w0 = Math.max(...rows.map((r) => r[0].length))
  const w1 = Math.max(...rows.map((r) => r[1].length))
  const out: string[] = [
    '',
    `rockvisor soak: ${(elapsed() / 1000).toFixed(0)} s (asked ${durationMs / 1000} s), seed ${seed}, root ${root}${keep ? ' (kept)' : ' (removed)'}`,
    '',
    `${'counter'.padEnd(w0)} | ${'value'.padStart(w1)} | notes`,
    `${'-'.repeat(w0)}-|-${'-'.repeat(w1)}-|------`,
    ...rows.map(([a, b, c]) => `${a.padEnd(w0)} | ${b.padStart(w1)} | ${c}`),
  ]
  if (details.length > 0) out.push('', `first ${details.length} findings:`, ...details.map((d) => `  - ${d}`))
  if (notes.length > 0) out.push('', `typed errors not injected by the soak (first ${notes.length}; not failures):`, ...notes.map((d) => `  - ${d}`))
  const failed = failures.filter(([, v]) => v > 0)
  if (aborted !== undefined) out.push('', aborted)
  out.push('', failed.length === 0 && aborted === undefined ? 'soak: PASS' : `soak: FAIL (${[...failed.map(([k, v]) => `${k} ${v}`), ...(aborted !== undefined ? ['aborted'] : [])].join(', ')})`)
  process.stdout.write(`${out.join('\n')}\n`)
  return failed.length === 0 && aborted === undefined ? 0 : 1
}

// ---------------------------------------------------------------------------------------------------------------
// Main

const cleanup = async (): Promise<void> => {
  if (current !== undefined && current.proc.exitCode === null && current.proc.signalCode === null) current.proc.kill('SIGKILL')
  if (!keep && root !== '') await rm(root, { recursive: true, force: true })
}

process.on('SIGINT', () => {
  progress('interrupted')
  void cleanup().then(() => process.exit(summary('interrupted by SIGINT')))
})
process.on('unhandledRejection', (e) => {
  mine.untyped++
  detail(`untyped: unhandled rejection in the soak: ${describeError(e)}`)
})

const main = async (): Promise<number> => {
  root = await mkdtemp(join(os.tmpdir(), 'rockvisor-soak-'))
  const deadline = durationMs
  progress(`seed ${seed}, ${durationMs / 1000} s, root ${root}`)
  const ticker = setInterval(progressLine, 10_000)
  // Past the deadline plus this, something hangs: report what was counted and fail.
  const watchdog = setTimeout(() => {
    void cleanup().then(() => process.exit(summary('the soak did not wind down within 180 s of its deadline')))
  }, durationMs + 180_000)

  let gen = 0
  current = spawnWriter(gen)
  if ((await Promise.race([current.up.then(() => current!.isUp), sleep(60_000).then(() => false)])) === false) {
    return summary('the first writer did not open its index within 60 s')
  }
  reader = await openReader()

  const checks = [loop(checkOnce), loop(checkOnce), loop(checkOnce), loop(readerFaults)]
  const verifications = new Set<Promise<void>>()
  const reopener = (async () => {
    while (!stopping) {
      const at = elapsed() + rng.between(8_000, 20_000)
      while (!stopping && elapsed() < at) await sleep(200)
      if (!stopping) await reopenReader()
    }
  })()

  while (elapsed() < deadline) {
    const w = current
    const clean = rng.chance(0.2)
    // Most kills come 1-6 s after the writer is up; some come while it starts (opening, replaying the WAL).
    if (!clean && rng.chance(0.2)) await sleep(Math.max(0, w.spawnedAt + rng.between(0, 1_500) - elapsed()))
    else {
      await Promise.race([w.up, sleep(60_000)])
      await sleep(rng.between(1_000, 6_000))
    }
    if (elapsed() >= deadline) break
    let killed = false
    if (clean) await closeWriter(w)
    else {
      await killWriter(w)
      killed = true
    }
    addCounters(endedWriters, w.last)
    w.last = newCounters()
    // Everything the dead writer printed is in the model now: it must all survive.
    const size = model.size
    const newest = [...model.newest]
    current = spawnWriter(++gen)
    if (killed) {
      const next = current
      const v = Promise.race([next.firstAck, next.done]).then(() => verifyBatches(size, newest, w.gen, 30, 150, `after killing writer g${w.gen}`))
      verifications.add(v)
      void v.finally(() => verifications.delete(v))
    }
  }

  // Wind down: the last writer closes cleanly; every check ends; then a last verification of everything acknowledged.
  progress('deadline reached: closing the writer')
  await closeWriter(current)
  addCounters(endedWriters, current.last)
  current.last = newCounters()
  stopping = true
  await Promise.all([...checks, reopener, ...verifications])
  if (reader === undefined) reader = await openReader()
  progress(`final verification of ${model.size} acknowledged batches`)
  await verifyBatches(model.size, [...model.newest], undefined, 60, 2_000, 'final')
  await reopenReader(true)
  clearInterval(ticker)
  clearTimeout(watchdog)
  progressLine()
  return summary()
}

main().then(
  async (code) => {
    await cleanup()
    process.exit(code)
  },
  async (e: unknown) => {
    mine.untyped++
    detail(`untyped: the soak itself failed: ${describeError(e)}`)
    await cleanup()
    process.exit(summary('the soak itself failed'))
  },
)
