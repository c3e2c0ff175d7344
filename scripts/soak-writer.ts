/**
 * One writer process of the soak (scripts/soak.ts starts it; not meant to be run by hand):
 *
 *   tsx scripts/soak-writer.ts <root> <generation> <seed>
 *
 * Opens `<root>` in writer mode with tiny flush triggers and a FaultInjector, then until told to stop: writes
 * batches of metas (metaOf(generation, n), see soak-model.ts) to every topic and partition and prints one `ack` line
 * per acknowledged batch; reads its own acknowledged writes back (fresh, primary, bounded after a token; by msgId,
 * time range, segment offset, scan) and counts wrong answers; and injects faults on itself (crashes, failed
 * opens/reads/writes). Every line on stdout is JSON (a WriterLine). The parent may SIGKILL it at any moment; a line
 * on stdin asks for a clean close instead: it stops, closes the index, prints `closed` with the native handles still
 * open (must be 0), and exits.
 */
import { createInterface } from 'node:readline'
import { FaultInjector, openIndex, type Index, type MessageMeta } from '../src/index.js'
import {
  bounded,
  describeError,
  engineCounts,
  integrityOf,
  metaOf,
  newCounters,
  partitions,
  Rng,
  sameMeta,
  shards,
  sleep,
  tagOf,
  timestampOf,
  topics,
  type WriterLine,
} from './soak-model.js'

const [root, genArg, seedArg] = process.argv.slice(2)
if (root === undefined || genArg === undefined || seedArg === undefined) {
  console.error('usage: tsx scripts/soak-writer.ts <root> <generation> <seed>')
  process.exit(2)
}
const gen = Number(genArg)
const rng = new Rng(Number(seedArg))

const emit = (line: WriterLine): void => void process.stdout.write(`${JSON.stringify(line)}\n`)
const counters = newCounters()
let details = 0
const detail = (kind: 'wrong' | 'untyped' | 'stuck' | 'note', text: string): void => {
  if (details++ < 20) emit({ t: 'detail', kind, text: `writer g${gen}: ${text}`.slice(0, 2_000) })
}
let notes = 0
/** Set when a clean close begins: loops stop, and Closed errors are expected. */
let stopping = false

let index: Index | undefined
/** Counts a failure: typed errors by tag (not failures), untyped ones as failures. InvalidInput for a valid request is a wrong answer. */
const failure = (what: string, e: unknown): void => {
  const tag = tagOf(e)
  if (tag === undefined) {
    counters.untyped++
    detail('untyped', `${what}: ${describeError(e)}`)
    return
  }
  counters.typed[tag] = (counters.typed[tag] ?? 0) + 1
  // Typed errors are not failures; those not injected by the soak are worth a look.
  if (tag !== 'StorageFailure(injected)' && tag !== 'InvalidInput' && !stopping && notes++ < 5) detail('note', `${what}: ${(e as Error).message}`)
  if (tag === 'InvalidInput') {
    counters.wrong++
    detail('wrong', `${what}: InvalidInput for a valid request: ${(e as Error).message}`)
  }
  // A shard whose primary (or readers) exhausted its restart intensity stays down until recovered.
  if (tag === 'ShardUnavailable') index?.recover()
}
process.on('unhandledRejection', (e) => failure('unhandled rejection', e))
process.on('uncaughtException', (e) => failure('uncaught exception', e))

const engine = new FaultInjector()
index = await openIndex({
  root,
  shards,
  engine,
  freshness: { flushEveryRecords: 30, flushIntervalMs: 50 },
  readers: { min: 2, max: 4 },
})
const ix = index
emit({ t: 'up' })
ix.subscribe((e) => {
  if ((e.type as string) === 'torn-view') counters.tornEvents++
})

/** Acknowledged batches of this process, the newest few thousand, for reading back. */
interface Batch {
  readonly tp: number
  readonly p: number
  readonly n: number
  readonly c: number
  readonly tok: string
}
const recent: Batch[] = []
const recentMax = 4_096
let next = 0

const writeLoop = async (): Promise<void> => {
  while (!stopping) {
    const tp = rng.int(topics.length)
    const p = rng.int(partitions)
    const c = 5 + rng.int(11)
    const n = next
    next += c
    const metas = Array.from({ length: c }, (_, i) => metaOf(gen, n + i))
    try {
      const { token } = await ix.batchPut(topics[tp]!, p, metas)
      emit({ t: 'ack', tp, p, n, c, tok: token })
      const b = { tp, p, n, c, tok: token }
      if (recent.length < recentMax) recent.push(b)
      else recent[rng.int(recentMax)] = b
    } catch (e) {
      if (stopping && tagOf(e) === 'Closed') return
      failure(`batchPut(${topics[tp]}, ${p}, n ${n}..${n + c - 1})`, e)
      await sleep(5 + rng.int(20))
    }
    if (rng.chance(0.3)) await sleep(rng.int(4))
  }
}

/** One read of an acknowledged batch, judged. */
const readOnce = async (): Promise<void> => {
  // Half the time one of the newest batches (freshness is what is at stake), else any of the recent ones.
  const b = rng.chance(0.5) ? recent[Math.max(0, recent.length - 1 - rng.int(8))] : recent[rng.int(recent.length)]
  if (b === undefined) return sleep(10)
  const topic = topics[b.tp]!
  const i = rng.int(b.c)
  const want = metaOf(gen, b.n + i)
  // Read options: default (fresh: read-your-writes), the primary, or bounded after the batch's token (served by a
  // reader at or past the token).
  const mode = rng.int(3)
  const options = mode === 0 ? undefined : mode === 1 ? ({ consistency: 'primary' } as const) : ({ after: b.tok, consistency: 'bounded', maxStalenessMs: 60_000 } as const)
  const op = rng.int(6)
  const where = `${topic}/${b.p} n ${b.n + i} (batch ${b.n}..${b.n + b.c - 1}, ${b.tok}) options ${JSON.stringify(options ?? 'fresh')}`
  counters.reads++
  const outcome = await bounded(async () => {
    try {
      switch (op) {
        case 0:
        case 1: {
          const got = await ix.getByMsgId(topic, b.p, want.msgId, options)
          if (!sameMeta(got, want)) wrong(`getByMsgId ${where}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
          break
        }
        case 2: {
          const j = i + rng.int(b.c - i)
          const got = await ix.getRangeByTime(topic, b.p, timestampOf(gen, b.n + i), timestampOf(gen, b.n + j), options)
          const ok = got?.first.segmentId === gen && got.first.offset === b.n + i && got.last.segmentId === gen && got.last.offset === b.n + j
          if (!ok) wrong(`getRangeByTime ${where} to n ${b.n + j}: got ${JSON.stringify(got)}`)
          break
        }
        case 3: {
          const got = await ix.getMsgIdBySegmentOffset(topic, b.p, { segmentId: gen, offset: b.n + i }, options)
          if (got !== want.msgId) wrong(`getMsgIdBySegmentOffset ${where}: got ${JSON.stringify(got)}, want ${want.msgId}`)
          break
        }
        case 4: {
          const got: MessageMeta[] = []
          for await (const m of ix.scanByTime(topic, b.p, timestampOf(gen, b.n), timestampOf(gen, b.n + b.c - 1), options)) got.push(m)
          const ok = got.length === b.c && got.every((m, k) => sameMeta(m, metaOf(gen, b.n + k)))
          if (!ok) wrong(`scanByTime ${where}: got ${got.length} metas ${JSON.stringify(got.map((m) => m.offset))}, want offsets ${b.n}..${b.n + b.c - 1}`)
          break
        }
        default: {
          // Something never written must be missing, never a neighbour's meta.
          const got = await ix.getMsgIdBySegmentOffset(topic, b.p, { segmentId: 0xffff_fff0, offset: b.n + i }, options)
          const meta = await ix.getByMsgId(topic, b.p, `never-${gen}-${b.n + i}`, options)
          if (got !== undefined || meta !== undefined) wrong(`missing keys ${where}: got ${JSON.stringify([got, meta])}`)
        }
      }
    } catch (e) {
      if (stopping && tagOf(e) === 'Closed') return
      failure(`read op ${op} ${where}`, e)
    }
  })
  if (outcome === 'stuck') {
    counters.stuck++
    detail('stuck', `read op ${op} ${where} took more than 10 s`)
  }
}
const wrong = (text: string): void => {
  counters.wrong++
  detail('wrong', text)
}

const readLoop = async (): Promise<void> => {
  while (!stopping) {
    await readOnce()
    if (rng.chance(0.2)) await sleep(rng.int(3))
  }
}

/** Injects a fault on this index now and then. */
const faultLoop = async (): Promise<void> => {
  while (!stopping) {
    await sleep(rng.between(150, 900))
    if (stopping) return
    const tp = rng.int(topics.length)
    const topic = topics[tp]!
    const p = rng.int(partitions)
    const dir = ix.locate(topic, p).dir
    const r = rng.next()
    try {
      if (r < 0.25) ix.faults.crash(topic, p, 'readers')
      else if (r < 0.45) {
        // A reader that exists now, if any.
        const views = ix.stats().shards.find((s) => s.id === ix.locate(topic, p).id)?.views ?? []
        const reader = views.length > 0 ? rng.pick(views).reader : 'reader-1'
        ix.faults.crash(topic, p, reader as `reader-${number}`)
      } else if (r < 0.55) ix.faults.crash(topic, p, 'primary')
      else if (r < 0.7) ix.faults.failNext('read', 1, rng.chance(0.5) ? { dir } : {})
      else if (r < 0.85) ix.faults.failNext('write', 1, { dir })
      else ix.faults.failNext('open', 1, rng.chance(0.5) ? { role: 'reader' } : { role: 'primary', dir })
      counters.faults++
    } catch (e) {
      failure('fault injection', e)
    }
  }
}

const report = (): void => {
  const integrity = integrityOf(ix.stats().shards)
  counters.tornViews = integrity.tornViews
  counters.corruptReads = integrity.corruptReads
  counters.engine = engineCounts(engine)
  emit({ t: 'stats', ...counters })
}
const reporter = setInterval(report, 500)

const loops = [writeLoop(), writeLoop(), writeLoop(), readLoop(), readLoop(), readLoop(), readLoop(), faultLoop()]

// A line on stdin (or its end): close cleanly.
for await (const _ of createInterface({ input: process.stdin })) break
stopping = true
// Reads end within their 10 s bound; a write waiting for a primary may not: close fails it with Closed.
await Promise.race([Promise.all(loops), sleep(15_000)])
clearInterval(reporter)
report()
try {
  await ix.close()
} catch (e) {
  failure('close', e)
  report()
}
emit({ t: 'closed', liveHandles: ix.faults.liveHandles, tableHandles: ix.stats().totals.handles })
process.exit(0)
