/**
 * `rockvisor demo` (what `npm start` runs): writes a synthetic stream of message metas into several topics whose
 * partitions cover every shard, while concurrent readers query them by msg id, by time and by segment offset and
 * check every answer; then a read-only phase, a scan and a retention; `--chaos` crashes readers and primaries at
 * random through `index.faults.crash` meanwhile. Shows a progress bar and a live table of the shards, and ends with
 * a summary: what was written and read, how fast, what the supervisors restarted, which requests failed (by error
 * tag), and where the data is.
 */
import { existsSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { lstat, mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { isRockvisorError, openIndex, shardOf, type Index, type LifecycleEvent, type MessageMeta, type ShardStats } from '../index.js'
import { InspectorHub } from '../inspector/hub.js'
import { startInspectorServer, type InspectorServer } from '../inspector/server.js'
import { bytes, duration, num, ranges, shardName, table } from './format.js'
import type { Io } from './io.js'
import { liveDisplay, type LiveDisplay } from './live.js'

export interface DemoFlags {
  readonly root: string
  /** Shards per topic for a new root (an existing root keeps its own count unless this is given). */
  readonly shards?: number
  readonly topics: number
  readonly partitions: number
  readonly metas: number
  readonly batch: number
  readonly readers: number
  readonly reads: number
  readonly chaos: boolean
  readonly chaosEvery: number
  readonly inspect: boolean
  readonly port: number
  readonly plain: boolean
}

/** The shard count a new demo root gets. */
export const demoShards = 4

const topicNames = ['orders', 'payments', 'clicks', 'shipments', 'refunds', 'audits', 'signups', 'invoices']

/** Partitions 0..wanted-1, extended until every one of `shards` shards holds at least one. */
export const partitionsCovering = (shards: number, wanted: number): number[] => {
  const out: number[] = []
  const covered = new Set<number>()
  for (let p = 0; out.length < wanted || covered.size < shards; p++) {
    out.push(p)
    covered.add(shardOf(p, shards))
  }
  return out
}

/**
 * The file that makes a directory a demo root: written when the demo takes a new or empty directory, and required of
 * a directory the demo runs in again. It holds `{"demo":1,"next":T}`: the first timestamp the next run may write, so
 * that its metas come after every earlier run's (whose checks of time ranges would otherwise count them).
 */
export const demoMarker = 'rockvisor-demo'

/**
 * Where the demo may run: a directory that does not exist or is empty, or one an earlier demo made (its marker a
 * regular file that parses). Resolves the earliest timestamp the run may write (0 for a new root). Any other
 * directory is refused, a rockvisor root included: the demo writes synthetic metas and removes old ones (retention),
 * and would delete or replace a real root's data.
 */
export const demoRoot = async (root: string): Promise<{ fresh: boolean; notBefore: number }> => {
  let entries: string[]
  try {
    if (!(await stat(root)).isDirectory()) throw new Error(`the demo's root ${root} is not a directory: pass another --root`)
    entries = await readdir(root)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { fresh: true, notBefore: 0 }
    throw e
  }
  // (A marker's temporary file alone: a run stopped while it wrote the marker, before anything else was made.)
  if (entries.every((name) => name.startsWith(`${demoMarker}.`) && name.endsWith('.tmp'))) return { fresh: true, notBefore: 0 }
  if (entries.includes(demoMarker)) {
    const next = await readMarker(join(root, demoMarker))
    if (next !== undefined) return { fresh: false, notBefore: next }
    throw new Error(`the demo does not run in ${root}: its ${demoMarker} entry is not a demo's marker (a file holding {"demo":1,"next":N}); pass another --root`)
  }
  const some = entries.slice(0, 3).join(', ') + (entries.length > 3 ? `, ... (${entries.length} entries)` : '')
  throw new Error(
    `the demo does not run in ${root}: it holds ${some}, and no ${demoMarker} file. The demo writes synthetic metas and removes old ones ` +
      `(retention), so it runs only in a new or empty directory, or in one an earlier demo made; pass another --root ` +
      `(a demo root made by an older version has no ${demoMarker} file: if that is what it is, remove it and run the demo again)`,
  )
}

/** The `next` a demo marker holds, or undefined for anything else (not a regular file, not the marker's JSON). */
const readMarker = async (file: string): Promise<number | undefined> => {
  try {
    if (!(await lstat(file)).isFile()) return undefined
    const parsed = JSON.parse(await readFile(file, 'utf8')) as { demo?: unknown; next?: unknown }
    return parsed.demo === 1 && typeof parsed.next === 'number' && Number.isSafeInteger(parsed.next) && parsed.next >= 0 ? parsed.next : undefined
  } catch {
    return undefined
  }
}

/** Records in the demo root's marker the first timestamp the next run may write (a new file, renamed into place). */
const markDemoRoot = async (root: string, next: number): Promise<void> => {
  const file = join(root, demoMarker)
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  await writeFile(tmp, `${JSON.stringify({ demo: 1, next })}\n`, { flag: 'wx' })
  await rename(tmp, file)
}

/** `path` as a shell word: as it is when it is plain, else in single quotes. */
export const shellWord = (path: string): string => (/^[A-Za-z0-9_./:@%+=,-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`)

/** The i-th meta of a partition: 10 ms apart, 1,000 per segment, 128 bytes each. */
const metaOf = (topic: string, p: number, i: number, base: number): MessageMeta => ({
  msgId: `${topic}-${p}-${i}`,
  timestamp: base + i * 10,
  segmentId: Math.floor(i / 1000),
  offset: (i % 1000) * 128,
  msgLen: 128,
})

const sizeOf = async (dir: string): Promise<number> => {
  let total = 0
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) total += await sizeOf(path)
    else if (entry.isFile()) total += (await stat(path)).size
  }
  return total
}

interface Counters {
  written: number
  batches: number
  bytes: number
  reads: { byId: number; byTime: number; byOffset: number; scans: number }
  wrong: number
  wrongExamples: string[]
  failed: Map<string, number>
  failedExamples: string[]
  crashes: { reader: number; readers: number; primary: number }
  recoveries: number
  events: Map<string, number>
}

const readsOf = (c: Counters): number => c.reads.byId + c.reads.byTime + c.reads.byOffset + c.reads.scans

/** One row per shard for the live table. */
const shardRows = (shards: readonly ShardStats[]): string[][] =>
  [...shards]
    .sort((a, b) => (a.topic === b.topic ? a.shard - b.shard : a.topic < b.topic ? -1 : 1))
    .map((s) => {
      const seq = Math.max(s.sequence, ...s.views.map((v) => v.sequence))
      const lag = s.views.length === 0 ? '-' : num(Math.max(...s.views.map((v) => seq - v.sequence)))
      const readers = Object.entries(s.readers)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([state, n]) => `${n} ${state}`)
        .join(', ')
      return [
        shardName(s.topic, s.shard),
        s.pool === 'degraded' ? `${s.state}, degraded` : s.state,
        s.primary,
        readers || '-',
        `${s.restarts.primary} / ${s.restarts.readers}`,
        `${s.queues.pendingWrites} / ${s.queues.inflight}`,
        num(seq),
        lag,
      ]
    })

const tableHead = ['shard', 'state', 'primary', 'readers', 'restarts p / r', 'queued w / reads', 'sequence', 'view lag']

export const demoCommand = async (flags: DemoFlags, io: Io): Promise<number> => {
  const root = flags.root
  const { fresh, notBefore } = await demoRoot(root)
  const hub = flags.inspect ? new InspectorHub() : undefined
  // The inspector's port first: a port in use fails the demo before it creates anything.
  let server: InspectorServer | undefined
  if (hub !== undefined) {
    server = await startInspectorServer({ hub, port: flags.port }).catch((e: NodeJS.ErrnoException) => {
      hub.close()
      throw e.code === 'EADDRINUSE' ? new Error(`port ${flags.port} is in use: pass --port N (0 picks a free one)`) : e
    })
  }
  try {
    // A new demo root is marked before anything else is created in it: interrupted at any point after, it is still
    // the demo's.
    if (fresh) {
      await mkdir(root, { recursive: true })
      await markDemoRoot(root, 0)
    }
    const isNew = !existsSync(join(root, 'rockvisor.json'))
    const index = await openIndex({
      root,
      ...(flags.shards !== undefined ? { shards: flags.shards } : isNew ? { shards: demoShards } : {}),
      readers: { min: 2, max: 4 },
      ...(hub === undefined ? {} : { inspect: hub.inspect }),
    })
    let stopping = false
    const interrupted = io.interrupted().then(() => {
      stopping = true
    })
    try {
      hub?.attach(index)
      return await run(index, flags, io, isNew, notBefore, () => stopping, hub, server, interrupted)
    } finally {
      await index.close()
    }
  } finally {
    await server?.close()
    hub?.close()
  }
}

const run = async (
  index: Index,
  flags: DemoFlags,
  io: Io,
  isNew: boolean,
  notBefore: number,
  stopping: () => boolean,
  hub: InspectorHub | undefined,
  server: InspectorServer | undefined,
  interrupted: Promise<void>,
): Promise<number> => {
  const t0 = performance.now()
  const shards = index.shards
  const topics = topicNames.slice(0, flags.topics)
  const partitions = partitionsCovering(shards, flags.partitions)
  const perPartition = Math.max(1, Math.ceil(flags.metas / (topics.length * partitions.length)))
  const total = perPartition * topics.length * partitions.length
  // An hour ago, or after every meta an earlier run on this root wrote, recorded before anything is written.
  const base = Math.max(Date.now() - 3_600_000, notBefore)
  await markDemoRoot(index.root, base + perPartition * 10)
  const c: Counters = {
    written: 0,
    batches: 0,
    bytes: 0,
    reads: { byId: 0, byTime: 0, byOffset: 0, scans: 0 },
    wrong: 0,
    wrongExamples: [],
    failed: new Map(),
    failedExamples: [],
    crashes: { reader: 0, readers: 0, primary: 0 },
    recoveries: 0,
    events: new Map(),
  }

  const out = (line: string) => io.out(`${line}\n`)
  out(`rockvisor demo: ${isNew ? 'a new root' : 'an existing root'} at ${resolve(index.root)}, ${shards} shards per topic`)
  for (const topic of topics) {
    const byShard = new Map<number, number[]>()
    for (const p of partitions) byShard.set(shardOf(p, shards), [...(byShard.get(shardOf(p, shards)) ?? []), p])
    const spread = [...byShard.entries()]
      .sort(([a], [b]) => a - b)
      .map(([s, ps]) => `${shardName(topic, s)}: ${ranges(ps)}`)
      .join('; ')
    out(`  topic ${topic}: partitions ${ranges(partitions)} -> ${spread}`)
  }
  out(`  ${num(total)} metas (${num(perPartition)} per partition, batches of ${num(flags.batch)}), ${flags.readers} concurrent readers, then ${num(flags.reads)} reads${flags.chaos ? `; chaos: a crash every ${flags.chaosEvery} ms` : ''}`)
  if (server !== undefined) out(`  inspector: ${server.url} (open it in a browser)`)
  out('')

  const display: LiveDisplay = liveDisplay(io, flags.plain)
  const setActivity = (a: string) => {
    if (hub !== undefined) hub.activity = `demo: ${a}`
  }

  const failed = (what: string, e: unknown) => {
    const tag = isRockvisorError(e) ? e._tag : 'untyped'
    c.failed.set(tag, (c.failed.get(tag) ?? 0) + 1)
    if (c.failedExamples.length < 5) c.failedExamples.push(`${what}: ${tag}: ${e instanceof Error ? e.message : String(e)}`)
  }
  const wrong = (what: string) => {
    c.wrong++
    if (c.wrongExamples.length < 5) c.wrongExamples.push(what)
  }

  const recovered = new Map<string, number>()
  const maxRecoveries = 3
  const unsubscribe = index.subscribe((e: LifecycleEvent) => {
    c.events.set(e.type, (c.events.get(e.type) ?? 0) + 1)
    // A shard that gave up (restart intensity exhausted, or a failure restarting cannot cure) is recovered, and
    // counted; up to 3 times per shard (one that gives up again at once, a root locked by another writer say, would
    // otherwise be recovered in a loop).
    if (e.type === 'degraded' || (e.type === 'failed' && e.actor === 'shard')) {
      const what = e.type === 'degraded' ? 'its readers' : 'it'
      const n = (recovered.get(e.shard) ?? 0) + 1
      recovered.set(e.shard, n)
      if (n > maxRecoveries) {
        if (n === maxRecoveries + 1) display.log(`  ${e.shard}: ${what} gave up again after ${maxRecoveries} recoveries; left as it is`)
        return
      }
      c.recoveries++
      setTimeout(() => {
        try {
          index.recover(e.shard)
        } catch {
          // The index closed meanwhile.
        }
      }, 200).unref()
      display.log(`  ${e.shard}: ${what} gave up (${e.type === 'degraded' ? 'restart intensity exhausted' : 'see the failed requests'}); recovering`)
    }
  })

  // Acknowledged metas per (topic, partition): readers only ask for those.
  const acked = new Map<string, number>()
  const key = (t: string, p: number) => `${t}\u0000${p}`
  const pick = (): { topic: string; p: number; n: number } | undefined => {
    for (let tries = 0; tries < 8; tries++) {
      const topic = topics[Math.floor(Math.random() * topics.length)]!
      const p = partitions[Math.floor(Math.random() * partitions.length)]!
      const n = acked.get(key(topic, p)) ?? 0
      if (n > 0) return { topic, p, n }
    }
    return undefined
  }

  let kind = 0
  const readOnce = async (): Promise<void> => {
    const target = pick()
    if (target === undefined) {
      await new Promise((r) => setTimeout(r, 5))
      return
    }
    const { topic, p, n } = target
    const i = Math.floor(Math.random() * n)
    const m = metaOf(topic, p, i, base)
    const k = kind++ % 3
    try {
      if (k === 0) {
        const got = await index.getByMsgId(topic, p, m.msgId)
        c.reads.byId++
        if (got === undefined || got.timestamp !== m.timestamp || got.offset !== m.offset || got.segmentId !== m.segmentId) wrong(`getByMsgId(${topic}, ${p}, ${m.msgId}) -> ${JSON.stringify(got)}`)
      } else if (k === 1) {
        const j = Math.min(n - 1, i + Math.floor(Math.random() * 50))
        const last = metaOf(topic, p, j, base)
        const got = await index.getRangeByTime(topic, p, m.timestamp, last.timestamp)
        c.reads.byTime++
        if (got === undefined || got.first.segmentId !== m.segmentId || got.first.offset !== m.offset || got.last.segmentId !== last.segmentId || got.last.offset !== last.offset) {
          wrong(`getRangeByTime(${topic}, ${p}, ${m.timestamp}, ${last.timestamp}) -> ${JSON.stringify(got)}`)
        }
      } else {
        const got = await index.getMsgIdBySegmentOffset(topic, p, { segmentId: m.segmentId, offset: m.offset })
        c.reads.byOffset++
        if (got !== m.msgId) wrong(`getMsgIdBySegmentOffset(${topic}, ${p}, ${m.segmentId}:${m.offset}) -> ${JSON.stringify(got)}`)
      }
    } catch (e) {
      failed(['getByMsgId', 'getRangeByTime', 'getMsgIdBySegmentOffset'][k]!, e)
    }
  }

  const refresh = () => display.table(table(tableHead, shardRows(index.stats().shards), io.tty && !flags.plain))
  const restarts = () => index.stats().shards.reduce((n, s) => n + s.restarts.primary + s.restarts.readers, 0)
  let ingesting = true
  const extra = () => {
    const f = [...c.failed.values()].reduce((a, b) => a + b, 0)
    return `${ingesting ? `reads ${num(readsOf(c))}, ` : ''}wrong ${c.wrong}, restarts ${restarts()}, failed ${f}`
  }
  const ticker = setInterval(refresh, 250)

  // Chaos: crash a reader, every reader or the primary of a random running shard, keeping each shard's restarts
  // well under its restart intensity (10 in 60 s by default), so that no shard has to give up.
  const recentCrashes = new Map<string, number[]>()
  const chaosTimer = flags.chaos
    ? setInterval(() => {
        const topic = topics[Math.floor(Math.random() * topics.length)]!
        const p = partitions[Math.floor(Math.random() * partitions.length)]!
        const where = index.locate(topic, p)
        const s = index.stats().shards.find((x) => x.id === where.id)
        if (s === undefined || s.state !== 'running' || s.pool !== 'healthy' || s.views.length === 0) return
        const now = Date.now()
        const recent = (recentCrashes.get(where.id) ?? []).filter((t) => now - t < 60_000)
        const r = Math.random()
        const target = r < 0.55 ? (s.views[Math.floor(Math.random() * s.views.length)]!.reader as `reader-${number}`) : r < 0.8 ? 'readers' : 'primary'
        const cost = target === 'readers' ? s.views.length : 1
        if (recent.length + cost > 6) return
        const n = index.faults.crash(topic, p, target)
        if (n === 0) return
        recentCrashes.set(where.id, [...recent, ...Array<number>(n).fill(now)])
        if (target === 'primary') c.crashes.primary++
        else if (target === 'readers') c.crashes.readers++
        else c.crashes.reader++
        display.log(`  chaos: crashed ${target === 'readers' ? `all ${n} readers` : target} of ${shardName(topic, where.shard)}`)
      }, flags.chaosEvery)
    : undefined

  // Phase 1: ingest, with readers checking what was acknowledged so far.
  setActivity('ingesting')
  display.phase('ingest', total, 'metas')
  const readerLoops = (until: () => boolean) =>
    Array.from({ length: flags.readers }, async () => {
      while (!until() && !stopping()) await readOnce()
    })
  const ingestReaders = readerLoops(() => !ingesting)
  const progress = setInterval(() => display.update(c.written, extra()), 100)
  await Promise.all(
    topics.flatMap((topic) =>
      partitions.map(async (p) => {
        for (let start = 0; start < perPartition && !stopping(); start += flags.batch) {
          const metas: MessageMeta[] = []
          for (let i = start; i < Math.min(start + flags.batch, perPartition); i++) metas.push(metaOf(topic, p, i, base))
          for (let attempt = 1; ; attempt++) {
            try {
              const r = await index.batchPut(topic, p, metas)
              c.written += metas.length
              c.batches++
              c.bytes += r.bytes
              acked.set(key(topic, p), start + metas.length)
              break
            } catch (e) {
              failed('batchPut', e)
              if (attempt >= 3 || stopping()) return
              await new Promise((r) => setTimeout(r, 100 * attempt))
            }
          }
        }
      }),
    ),
  )
  ingesting = false
  await Promise.all(ingestReaders)
  const ingestMs = performance.now() - t0
  display.update(c.written, extra())
  refresh()
  display.endPhase()

  // Phase 2: reads only.
  setActivity('reading')
  const readsBefore = readsOf(c)
  const t1 = performance.now()
  display.phase('read', flags.reads, 'reads')
  clearInterval(progress)
  const readProgress = setInterval(() => display.update(Math.min(flags.reads, readsOf(c) - readsBefore), extra()), 100)
  // (Readers ask only for acknowledged metas: with none, there is nothing to read.)
  await Promise.all(readerLoops(() => acked.size === 0 || readsOf(c) - readsBefore >= flags.reads))
  const readMs = performance.now() - t1
  clearInterval(readProgress)
  if (chaosTimer !== undefined) clearInterval(chaosTimer)
  display.update(Math.min(flags.reads, readsOf(c) - readsBefore), extra())
  refresh()
  display.endPhase()
  clearInterval(ticker)
  display.stop()

  // A scan and a retention, checked.
  setActivity('scan and retention')
  const lines: string[] = []
  if (!stopping()) {
    const topic = topics[0]!
    const p = partitions[0]!
    const window = Math.min(perPartition, 500)
    let scanned = 0
    try {
      for await (const _ of index.scanByTime(topic, p, base, base + (window - 1) * 10)) scanned++
      c.reads.scans++
      if (scanned !== window) wrong(`scanByTime(${topic}, ${p}, first ${window} metas) streamed ${scanned}`)
      lines.push(`scanByTime(${topic}, partition ${p}, its first ${duration(window * 10)}) streamed ${num(scanned)} metas (expected ${num(window)})`)
    } catch (e) {
      failed('scanByTime', e)
    }
    const cut = Math.floor(perPartition / 10)
    try {
      const { deleted } = await index.deleteBefore(topic, p, base + cut * 10)
      if (deleted < cut) wrong(`deleteBefore(${topic}, ${p}) deleted ${deleted}, expected at least ${cut}`)
      const gone = await index.getByMsgId(topic, p, metaOf(topic, p, 0, base).msgId)
      if (cut > 0 && gone !== undefined) wrong(`after deleteBefore, ${metaOf(topic, p, 0, base).msgId} is still there`)
      lines.push(`deleteBefore(${topic}, partition ${p}, its first ${duration(cut * 10)}) removed ${num(deleted)} metas from all three views`)
    } catch (e) {
      failed('deleteBefore', e)
    }
  }
  unsubscribe()

  // The summary.
  const stats = index.stats()
  const restartsP = stats.shards.reduce((n, s) => n + s.restarts.primary, 0)
  const restartsR = stats.shards.reduce((n, s) => n + s.restarts.readers, 0)
  const failures = [...c.failed.entries()]
  const failedTotal = failures.reduce((n, [, v]) => n + v, 0)
  const untyped = c.failed.get('untyped') ?? 0
  const elapsed = performance.now() - t0
  const rootPath = resolve(index.root)
  const size = await sizeOf(index.root).catch(() => 0)
  const partitionsPerShard = `${topics.length} topic${topics.length === 1 ? '' : 's'} x ${partitions.length} partitions over ${shards} shards each`
  const summary: Array<[string, string]> = [
    ['metas written', `${num(c.written)} in ${num(c.batches)} batches, ${num(c.written / (ingestMs / 1000))} metas/s (${partitionsPerShard})`],
    ['reads', `${num(readsOf(c))}: ${num(c.reads.byId)} by msg id, ${num(c.reads.byTime)} by time, ${num(c.reads.byOffset)} by segment offset, ${c.reads.scans} scan; ${num((readsOf(c) - readsBefore) / Math.max(readMs / 1000, 0.001))} reads/s in the read phase`],
    ['wrong answers', `${c.wrong}`],
    ['restarts', `${restartsP} of primaries, ${restartsR} of readers${flags.chaos ? ` (chaos crashed ${c.crashes.reader} single readers, ${c.crashes.readers} whole reader pools, ${c.crashes.primary} primaries)` : ''}${c.recoveries > 0 ? `; ${c.recoveries} shards recovered after giving up` : ''}`],
    ['failed requests', failedTotal === 0 ? '0' : `${failedTotal} (${failures.map(([tag, n]) => `${n} ${tag}`).join(', ')})${failedTotal > 0 ? ', each one a typed error, counted' : ''}`],
    ['time', duration(elapsed)],
    ['data', `${rootPath} (${bytes(size)})`],
  ]
  if (stopping()) summary.unshift(['stopped', 'interrupted: the numbers below cover what ran'])
  // A run that wrote nothing showed nothing: it fails (its failed requests say why).
  const nothing = c.written === 0 && !stopping()
  if (nothing) summary.unshift(['failed', 'no meta was written: see the failed requests'])
  out('')
  for (const l of lines) out(l)
  out('')
  out('Summary')
  for (const [k, v] of summary) out(`  ${k.padEnd(16)} ${v}`)
  for (const w of c.wrongExamples) out(`  wrong: ${w}`)
  for (const f of c.failedExamples) out(`  failed: ${f}`)
  const t = topics[0]!
  const p = partitions[Math.min(1, partitions.length - 1)]!
  out('')
  out('Look at the data (reader mode: these commands change nothing; `rockvisor` alone once it is installed):')
  const at = shellWord(index.root)
  out(`  npx rockvisor stats --root ${at}`)
  out(`  npx rockvisor get ${t} ${p} ${metaOf(t, p, Math.min(Math.floor(perPartition / 2), Math.max(0, (acked.get(key(t, p)) ?? 1) - 1)), base).msgId} --root ${at}`)
  out(`  npx rockvisor inspect --root ${at}`)
  out(`Remove it: rm -rf ${shellWord(rootPath)}`)

  // Stopped by the user before it finished: 130, as a shell reports a command Ctrl-C ended (a wrong answer still says 1).
  const stoppedEarly = stopping()
  if (server !== undefined && !stoppedEarly) {
    setActivity('done; idle')
    out('')
    out(`The inspector keeps running at ${server.url}: press Ctrl-C to close the index and exit.`)
    await interrupted
  }
  return c.wrong > 0 || untyped > 0 || nothing ? 1 : stoppedEarly ? 130 : 0
}
