/**
 * `npm run bench`: write throughput, point reads and refresh cost of rockvisor on real RocksDB, each next to the raw
 * binding, in one run. Prints a markdown report to stdout and writes it to bench/last-run.md (progress goes to
 * stderr). `BENCH_QUICK=1` scales every volume down 10x and writes bench/last-run.quick.md instead, so a quick run
 * never overwrites the numbers of a full one. Everything runs in one temp dir, removed at the end.
 */
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Index } from '../src/index.js'
import { lookups, makeDataset } from './data.js'
import { fixed, int, median, ms, size, summarize, table, us } from './measure.js'
import { mergeResults, openRawReaders, readIndex, readRawGet, readRawMultiGet, type PointKind, type ReadResult } from './read.js'
import { files, putsPerBatch, refreshCost } from './refresh.js'
import { mainThreadBench, placementBench } from './placement.js'
import { rangeVsPoint, scanVsRaw, type RangeRow, type ScanRow } from './range.js'
import { visibility, type VisibilityRow } from './visibility.js'
import { flushingOff, openRawPrimaries, openWarmIndex, settled, topic, waitUntil, writeIndex, writeRaw, type WriteResult } from './write.js'

const quick = process.env.BENCH_QUICK === '1'
const scale = quick ? 10 : 1
const config = {
  metas: 200_000 / scale,
  /**
   * Write batch sizes, each measured on its own: 1,000 metas (issue 9's target configuration) and 100. The reads
   * run on the index written last (the last size).
   */
  batchSizes: [100, 1_000],
  shards: 4,
  partitionsPerShard: 2,
  writeConcurrency: 16,
  writeRounds: 5,
  /** Warm-up lookups of the index's readers run with this many calls in flight. */
  readConcurrency: 64,
  /** Point reads run at each of these numbers of calls in flight (index and raw `db.get` alike). */
  readCallers: [1, 64, 1_000],
  /** Lookups per round and path for a lone caller (the others take a third of all msgIds per round). */
  loneCallerLookups: 20_000 / scale,
  multiGetKeys: 100,
  multiGetInFlight: 10,
  readRounds: 3,
  refreshCounts: [0, 1_000, 10_000, 100_000].map((n) => n / scale),
  refreshRepeats: 5,
}

const here = dirname(fileURLToPath(import.meta.url))
const outFile = join(here, quick ? 'last-run.quick.md' : 'last-run.md')
const progress = (line: string): void => void process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1)}s] ${line}\n`)
const t0 = performance.now()

const command = (): string => {
  const base = process.env.npm_lifecycle_event === 'bench' ? 'npm run bench' : 'npx tsx bench/run.ts'
  return quick ? `BENCH_QUICK=1 ${base}` : base
}

/**
 * Which code was measured: `BENCH_CODE` if set, else the git commit and any uncommitted change under src/ or actors/
 * (read-only git calls; `--no-optional-locks` so not even the git index is refreshed).
 */
const codeRevision = (): string => {
  if (process.env.BENCH_CODE) return process.env.BENCH_CODE
  const git = (...args: string[]) => execFileSync('git', ['--no-optional-locks', ...args], { cwd: join(here, '..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  try {
    const rev = git('rev-parse', '--short', 'HEAD')
    const dirty = git('status', '--porcelain', '--', 'src', 'actors').split('\n').filter(Boolean).length
    return dirty === 0 ? `commit ${rev}` : `commit ${rev} + ${dirty} uncommitted change(s) under src/ or actors/`
  } catch {
    return 'unknown (not a git checkout)'
  }
}

type Disk = { walBytes: number; sstFiles: number }

/** Section 1 at one batch size: every timed run of each path, and what each left on disk. */
interface WriteSection {
  readonly batchSize: number
  readonly ds: ReturnType<typeof makeDataset>
  readonly indexRuns: WriteResult[]
  readonly rawRuns: WriteResult[]
  /** The index with flushing effectively off ({@link flushingOff}): what the primary's flushes cost. */
  readonly noFlushRuns: WriteResult[]
  readonly indexDisk: Disk[]
  readonly rawDisk: Disk[]
  readonly noFlushDisk: Disk[]
}
const diskOf = async (dirs: readonly string[]): Promise<Disk> => {
  const all = await Promise.all(dirs.map((d) => files(d)))
  return { walBytes: all.reduce((a, x) => a + x.walBytes, 0), sstFiles: all.reduce((a, x) => a + x.sstFiles, 0) }
}

const perSecond = (count: number, ns: number): number => count / (ns / 1e9)

const main = async (): Promise<string> => {
  const load = { start: os.loadavg(), end: [] as number[] }
  const root = await mkdtemp(join(os.tmpdir(), 'rockvisor-bench-'))
  let dirs = 0
  const tempDir = async (name: string): Promise<string> => {
    const dir = join(root, `${name}-${dirs++}`)
    await mkdir(dir, { recursive: true })
    return dir
  }
  // Closed in reverse order of opening, whatever happens.
  const open: { close: () => Promise<void> }[] = []
  const closeAll = async (): Promise<void> => {
    for (const h of open.splice(0).reverse()) await h.close().catch((e: unknown) => progress(`close failed: ${String(e)}`))
  }
  try {
    const writes: WriteSection[] = []
    let index: Index | undefined
    let ds!: ReturnType<typeof makeDataset>
    for (const batchSize of config.batchSizes) {
      ds = makeDataset(config.metas, batchSize, config.shards, config.partitionsPerShard)
      progress(`data set: ${ds.metas} metas in ${ds.batches.length} batches of ${batchSize} over partitions ${ds.partitions.join(', ')}`)

      // ---- 1. writes: one untimed warm-up run of each path at a tenth of the volume (JIT, allocator), then rounds
      // that alternate the order; the last round of the last batch size ends with the index, whose data (2) then reads.
      const last = batchSize === config.batchSizes[config.batchSizes.length - 1]
      const warmDs = makeDataset(config.metas / 10, batchSize, config.shards, config.partitionsPerShard)
      {
        const dir = await tempDir('warm-index')
        const ix = await openWarmIndex(dir, warmDs, config.shards)
        open.push(ix)
        await writeIndex(ix, warmDs, config.writeConcurrency)
        await closeAll()
        const rawDir = await tempDir('warm-raw')
        const handles = await openRawPrimaries(Array.from({ length: config.shards }, (_, s) => join(rawDir, String(s))))
        try {
          await writeRaw(handles, warmDs, config.writeConcurrency)
        } finally {
          for (const h of handles) await h.close()
        }
        await rm(dir, { recursive: true, force: true })
        await rm(rawDir, { recursive: true, force: true })
        progress(`write warm-up done (${warmDs.metas} metas per path in batches of ${batchSize}, untimed)`)
      }
      const section: WriteSection = { batchSize, ds, indexRuns: [], rawRuns: [], noFlushRuns: [], indexDisk: [], rawDisk: [], noFlushDisk: [] }
      writes.push(section)
      for (let r = 0; r < config.writeRounds; r++) {
        // The order rotates from round to round; the last round ends with the index (whose data (2) reads).
        const paths = ['noFlush', 'raw', 'index'] as const
        const k = (config.writeRounds - 1 - r) % paths.length
        const order = [...paths.slice(k), ...paths.slice(0, k)]
        for (const path of order) {
          if (path !== 'raw') {
            const dir = await tempDir(`${path}-b${batchSize}-r${r}`)
            const ix = await openWarmIndex(dir, ds, config.shards, path === 'noFlush' ? flushingOff : {})
            open.push(ix)
            ;(path === 'index' ? section.indexRuns : section.noFlushRuns).push(await writeIndex(ix, ds, config.writeConcurrency))
            // A flush may still run beside the last writes: the files are counted once it ended.
            await waitUntil('the flushes to end', () => ix.stats().shards.every((s) => !s.flushes.running))
            ;(path === 'index' ? section.indexDisk : section.noFlushDisk).push(await diskOf([...new Set(ds.partitions.map((p) => ix.locate(topic, p).dir))]))
            if (path === 'index' && last && r === config.writeRounds - 1) index = ix
            else {
              await closeAll()
              await rm(dir, { recursive: true, force: true })
            }
          } else {
            const dir = await tempDir(`raw-b${batchSize}-r${r}`)
            const handles = await openRawPrimaries(Array.from({ length: config.shards }, (_, s) => join(dir, String(s))))
            try {
              section.rawRuns.push(await writeRaw(handles, ds, config.writeConcurrency))
              section.rawDisk.push(await diskOf(handles.map((h) => h.path)))
            } finally {
              for (const h of handles) await h.close()
            }
            await rm(dir, { recursive: true, force: true })
          }
          progress(`write round ${r + 1}/${config.writeRounds}, batches of ${batchSize}: ${path} done`)
        }
      }
    }
    if (index === undefined) throw new Error('no index left for the read benchmark')

    // ---- 2. point reads on the index written last.
    const shardDirs = Array.from({ length: config.shards }, (_, s) => index.locate(topic, ds.partitions.find((p) => index.locate(topic, p).shard === s)!).dir)
    const warmStart = performance.now()
    const warmLookups = lookups(ds, 7)
    let warmCount = 0
    let lastReaders = -1
    for (;;) {
      const chunk = warmLookups.slice(warmCount % warmLookups.length, (warmCount % warmLookups.length) + 4_000)
      const w = await readIndex(index, 'byId', chunk, config.readConcurrency)
      if (w.misses > 0) throw new Error(`index warm-up: ${w.misses} of ${chunk.length} lookups missed`)
      warmCount += chunk.length
      const readers = index.stats().totals.readers
      if (settled(index, config.shards) && readers === lastReaders) break
      lastReaders = readers
      if (performance.now() - warmStart > 60_000) throw new Error('the reader pool did not settle within 60 s')
    }
    const warmMs = performance.now() - warmStart
    progress(`index read warm-up: ${warmCount} lookups, ${warmMs.toFixed(0)} ms, ${lastReaders} readers`)
    const all = lookups(ds, 1)

    // Raw read-only instances of the binding on the same shard directories, beside the live index (as its readers are).
    const wal = await Promise.all(shardDirs.map((d) => files(d)))
    const rawOpen = await openRawReaders(shardDirs)
    const raw = rawOpen.dbs
    open.push(...raw)
    const memtable = await Promise.all(raw.map((db) => db.getProperty('rocksdb.cur-size-all-mem-tables')))
    const sstBytes = await Promise.all(raw.map((db) => db.getProperty('rocksdb.total-sst-files-size')))
    const warmSlice = all.slice(0, Math.ceil(all.length / 20))
    for (const kind of pointKinds) {
      await readIndex(index, kind, warmSlice, config.readConcurrency) // warm-up, untimed
      await readRawGet(raw, kind, warmSlice, config.readConcurrency) // warm-up, untimed
      await readRawMultiGet(raw, kind, warmSlice, config.multiGetKeys, config.multiGetInFlight) // warm-up, untimed
    }

    // Each round: for each lookup and number of callers, the index and raw `db.get` (and, at the most callers, the
    // raw read batches) on the same slice of the shuffled lookups, cut into blocks that the paths take in turn (the
    // order rotating from block to block), so that every path meets the same load of the shared machine.
    const reads = new Map<string, ReadResult[]>()
    const record = (key: string, result: ReadResult): void => {
      if (result.misses > 0) throw new Error(`${key}: ${result.misses} of ${result.keys} lookups missed`)
      reads.set(key, [...(reads.get(key) ?? []), result])
    }
    const readers: number[][] = []
    const mostCallers = Math.max(...config.readCallers)
    for (let r = 0; r < config.readRounds; r++) {
      for (const kind of pointKinds) {
        for (const callers of config.readCallers) {
          const part =
            callers === 1
              ? all.slice(r * config.loneCallerLookups, (r + 1) * config.loneCallerLookups)
              : all.slice(Math.floor((r * all.length) / config.readRounds), Math.floor(((r + 1) * all.length) / config.readRounds))
          const paths: ReadPath[] = callers === mostCallers ? ['index', 'get', 'multi'] : ['index', 'get']
          const runs = new Map<ReadPath, ReadResult[]>(paths.map((path) => [path, []]))
          const block = readBlock(callers)
          for (let b = 0; b * block < part.length; b++) {
            const lookupsOfBlock = part.slice(b * block, (b + 1) * block)
            for (let k = 0; k < paths.length; k++) {
              const path = paths[(r + b + k) % paths.length]!
              const result =
                path === 'index'
                  ? await readIndex(index, kind, lookupsOfBlock, callers)
                  : path === 'get'
                    ? await readRawGet(raw, kind, lookupsOfBlock, callers)
                    : await readRawMultiGet(raw, kind, lookupsOfBlock, config.multiGetKeys, config.multiGetInFlight)
              runs.get(path)!.push(result)
            }
          }
          record(readKey(kind, 'index', callers), mergeResults(runs.get('index')!))
          record(readKey(kind, 'get', callers), mergeResults(runs.get('get')!))
          if (callers === mostCallers) record(readKey(kind, 'multi', config.multiGetInFlight), mergeResults(runs.get('multi')!))
          readers.push(index.stats().shards.map((s) => s.readers['serving'] ?? 0))
          progress(`read round ${r + 1}/${config.readRounds}: ${kind}, ${callers} caller(s) done`)
        }
      }
    }
    // Range reads against point reads, lone caller, on the same index and raw readers.
    const ranges = await rangeVsPoint(index, raw, ds, topic, quick ? 500 : 5_000, 1_000)
    progress('range reads done')
    const scans = await scanVsRaw(index, raw, ds, topic, quick ? 1 : 3)
    progress('scans done')
    await closeAll()
    progress('index and raw readers closed')

    // ---- 3. refresh cost.
    const refresh = await refreshCost(tempDir, config.refreshCounts, config.refreshRepeats, progress)

    // ---- 4. write-ack -> visible-at-reader latency.
    const visible = await visibility(() => tempDir('visibility'), quick ? 250 : 1_000, quick ? 1_500 : 6_000, progress)

    // ---- 5. the mixed workload, per reader placement.
    const mixedOptions = { seconds: quick ? 2 : 6, warmup: quick ? 1 : 2, callers: 1_000, rounds: quick ? 1 : 2 }
    const mixed = await placementBench(mixedOptions, progress)
    // Where the main thread's time goes in that workload (sampled, in runs of their own).
    const mainThread = await mainThreadBench({ ...mixedOptions, rounds: 1 }, progress)
    load.end = os.loadavg()

    return report({ ds, writes, reads, readers, warmCount, warmMs, rawOpenNs: rawOpen.openNs, wal, memtable, sstBytes, refresh, visible, ranges, scans, mixed, mainThread, mixedOptions, load })
  } finally {
    await closeAll()
    await rm(root, { recursive: true, force: true })
  }
}

type Results = {
  /** The data set the reads ran on (the last batch size's). */
  ds: ReturnType<typeof makeDataset>
  writes: WriteSection[]
  reads: Map<string, ReadResult[]>
  readers: number[][]
  warmCount: number
  warmMs: number
  rawOpenNs: number[]
  wal: { walBytes: number; sstFiles: number }[]
  memtable: string[]
  sstBytes: string[]
  refresh: Awaited<ReturnType<typeof refreshCost>>
  visible: readonly VisibilityRow[]
  ranges: readonly RangeRow[]
  scans: readonly ScanRow[]
  mixed: readonly string[]
  mainThread: readonly string[]
  mixedOptions: { seconds: number; warmup: number; callers: number; rounds: number }
  load: { start: number[]; end: number[] }
}

type ReadPath = 'index' | 'get' | 'multi'
const pointKinds: readonly PointKind[] = ['byId', 'bySegmentOffset']
/** Lookups per block of the paired read runs: at least 32 per caller, so that every block runs at full concurrency. */
const readBlock = (callers: number): number => Math.max(1_000, callers * 32)
/** The key of a read path's results: lookup, path, calls in flight. */
const readKey = (kind: PointKind, path: ReadPath, callers: number): string => `${kind}/${path}/${callers}`

const report = async (r: Results): Promise<string> => {
  const binding = JSON.parse(await readFile(join(here, '..', 'node_modules', 'rocksdb-native', 'package.json'), 'utf8')) as { version: string }
  const cpus = os.cpus()
  const lines: string[] = []
  const out = (...l: string[]) => lines.push(...l)

  out(
    `# rockvisor benchmark${quick ? ' (QUICK: volumes / 10, not for BENCHMARKS.md)' : ''}`,
    '',
    `- Date: ${new Date().toISOString()}`,
    `- Command: \`${command()}\``,
    `- Code: ${codeRevision()}`,
    `- Node ${process.version}, rocksdb-native ${binding.version}, ${os.platform()} ${os.arch()} (${os.release()})`,
    `- CPU: ${cpus[0]?.model ?? 'unknown'}, ${cpus.length} cores; RAM ${size(os.totalmem())}`,
    `- Storage: temp dirs under \`${os.tmpdir()}\` (removed afterwards)`,
    `- Load average (1/5/15 min) at start: ${r.load.start.map((x) => fixed(x, 2)).join(' / ')}; at end: ${r.load.end.map((x) => fixed(x, 2)).join(' / ')} ` +
      `(the start figures predate the bench: other processes sharing the ${cpus.length} cores)`,
    '',
  )

  // ---- 1
  const writeRow = (w: WriteSection, name: string, runs: WriteResult[], disk: Disk[]): { row: string[]; rate: number } => {
    const rates = runs.map((x) => perSecond(w.ds.metas, x.run.elapsedNs))
    const rate = median(rates)
    const lat = summarize(runs.flatMap((x) => Array.from(x.run.latenciesNs)))
    return {
      rate,
      row: [name, int(w.batchSize), int(rate), rates.map(int).join(' / '), ms(lat.p50), ms(lat.p99), size(runs[0]!.bytes), [...new Set(disk.map((d) => `${size(d.walBytes)} / ${d.sstFiles}`))].join('; ')],
    }
  }
  const writeRows = r.writes.map((w) => ({
    w,
    ix: writeRow(w, '`index.batchPut` (validate, MultiGet of displaced entries, 1 write batch)', w.indexRuns, w.indexDisk),
    rw: writeRow(w, 'raw binding write batch (same 3 puts/meta + sequence key, 1 write batch)', w.rawRuns, w.rawDisk),
    nf: writeRow(w, '`index.batchPut`, flushing effectively off (262,144 records, 1 GiB memtable, 1 h)', w.noFlushRuns, w.noFlushDisk),
  }))
  const first = r.writes[0]!
  out(
    '## 1. Write throughput',
    '',
    `Per run ${r.writes.map((w) => `${int(w.ds.metas)} metas in batches of ${int(w.batchSize)}`).join(', then ')}, over ${first.ds.partitions.length} partitions ` +
      `(${config.partitionsPerShard} per shard: ${first.ds.partitions.join(', ')}), ${config.shards} shards, at most ${config.writeConcurrency} batches in flight. ` +
      `For each batch size, after one untimed warm-up run of each path at a tenth of the volume, each path runs ${config.writeRounds} times on fresh directories, ` +
      `the order rotating from run to run; the rate is the median run. Shards ` +
      `are opened before the timing starts. A third path is the index with flushing effectively off (what the primary's flushes cost: they keep readers' opens short). The raw path writes the ${config.shards} shard directories with the binding's own write batch and the index primary's RocksDB settings ` +
      `and does not serialize writes per shard (RocksDB groups concurrent batches); the index serializes each shard's writes.`,
    '',
    table(
      ['path', 'metas per batch', 'metas/s (median)', 'metas/s per run', 'batch p50 ms', 'batch p99 ms', 'key+value bytes', 'WAL / SST files after a run (distinct values)'],
      writeRows.flatMap(({ ix, rw, nf }) => [ix.row, rw.row, nf.row]),
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
    ...writeRows.map(
      ({ w, ix, rw, nf }) =>
        `Ratio, batches of ${int(w.batchSize)}: the index writes at **${fixed(ix.rate / rw.rate, 2)}x** the raw binding's rate (raw is ${fixed(rw.rate / ix.rate, 2)}x faster); ` +
        `with flushing effectively off, at ${fixed(nf.rate / rw.rate, 2)}x.`,
    ),
    '',
  )

  // ---- 2
  const reads = (kind: PointKind, path: ReadPath, callers: number) => {
    const runs = r.reads.get(readKey(kind, path, callers)) ?? []
    const rates = runs.map((x) => perSecond(x.keys, x.run.elapsedNs))
    const lat = summarize(runs.flatMap((x) => Array.from(x.run.latenciesNs)))
    const sum = (f: (x: ReadResult) => number) => runs.reduce((a, x) => a + f(x), 0)
    return {
      rate: median(rates),
      rates,
      lat,
      cpu: median(runs.map((x) => x.cpuUs / x.keys)),
      perRound: runs[0]?.keys ?? 0,
      calls: sum((x) => x.run.calls),
      keys: sum((x) => x.keys),
      misses: sum((x) => x.misses),
    }
  }
  /**
   * The ratio of two paths round by round (each round's paths met the same state of the machine), and their median:
   * on a machine whose rates move from round to round, steadier than the ratio of the two medians.
   */
  const perRound = (a: readonly number[], b: readonly number[]): string => {
    const ratios = a.slice(0, b.length).map((x, i) => x / b[i]!)
    return ratios.length === 0 ? '-' : `${ratios.map((x) => fixed(x, 2)).join(' / ')} (median ${fixed(median(ratios), 2)})`
  }
  const lookupName = { byId: '`getByMsgId`', bySegmentOffset: '`getMsgIdBySegmentOffset`' } as const
  const rawName = { byId: 'by-id key', bySegmentOffset: 'by-segment-offset key' } as const
  const readRows: string[][] = []
  const ratioRows: string[][] = []
  for (const kind of pointKinds) {
    const multi = reads(kind, 'multi', config.multiGetInFlight)
    for (const callers of config.readCallers) {
      const ix = reads(kind, 'index', callers)
      const get = reads(kind, 'get', callers)
      for (const [name, x] of [
        [`index ${lookupName[kind]}`, ix],
        [`raw \`db.get\` (${rawName[kind]})`, get],
      ] as const) {
        readRows.push([name, int(callers), '1', int(x.perRound), int(x.rate), x.rates.map(int).join(' / '), us(x.lat.p50), us(x.lat.p99), fixed(x.cpu, 1), String(x.misses)])
      }
      ratioRows.push([
        lookupName[kind],
        int(callers),
        `**${fixed(ix.rate / get.rate, 2)}x**`,
        perRound(ix.rates, get.rates),
        `**${fixed(ix.rate / multi.rate, 2)}x**`,
        perRound(ix.rates, multi.rates),
        `${fixed(get.cpu / ix.cpu, 2)}x`,
      ])
    }
    readRows.push([
      `raw read batch, ${config.multiGetKeys} keys (MultiGet, ${rawName[kind]})`,
      int(config.multiGetInFlight),
      String(config.multiGetKeys),
      int(multi.perRound),
      int(multi.rate),
      multi.rates.map(int).join(' / '),
      us(multi.lat.p50),
      us(multi.lat.p99),
      fixed(multi.cpu, 1),
      String(multi.misses),
    ])
  }
  const memBytes = r.memtable.reduce((a, b) => a + Number(b), 0)
  const sstBytes = r.sstBytes.reduce((a, b) => a + Number(b), 0)
  const pools = [...new Set(r.readers.map((x) => x.join(', ')))].join('; ')
  out(
    '## 2. Point reads',
    '',
    `On the index written by the last run of (1): ${int(r.ds.metas)} metas, its ${config.shards} shards still open. The index's point lookups ` +
      `(\`getByMsgId\`, \`getMsgIdBySegmentOffset\`) against the raw binding doing the same work on the same shard directories: its own ` +
      `\`db.get\` (one native read per key) with as many calls in flight as the index has callers, and its own read batch (one MultiGet of ` +
      `${config.multiGetKeys} keys per call, ${config.multiGetInFlight} calls in flight). Raw keys are built inside the timing, as the index builds them. ` +
      `${config.readRounds} rounds; in each, for each lookup and each number of callers (${config.readCallers.map(int).join(', ')}), the index and \`db.get\` ` +
      `look up the same slice of the shuffled metas (a third of them; ${int(config.loneCallerLookups)} for a lone caller), cut into blocks of ` +
      `${config.readCallers.map((c) => int(readBlock(c))).join(', ')} lookups that the paths take in turn, the order rotating from block to block, so that ` +
      `every path meets the same load of the shared machine; at ${int(Math.max(...config.readCallers))} callers the read batches take their turn on ` +
      `the same blocks. A round's rate is its lookups over the time its blocks took; the table gives the median round. CPU is the process's (main thread and libuv's pool, user + ` +
      `system) per lookup, median round. The index serves reads from its readers: before the timing, ${int(r.warmCount)} warm-up lookups ` +
      `(${fixed(r.warmMs, 0)} ms) let the stale readers refresh and the pool grow until it settled; readers serving per shard after the index runs: ${pools}. ` +
      `The raw side uses one read-only rocksdb-native instance per shard directory (readers' settings, maxOpenFiles -1), beside the live index, after an ` +
      `untimed ${int(Math.ceil(r.ds.metas / 20))}-lookup warm-up of every path. Latency is per call (hrtime around each awaited call), percentiles over every call of every round.`,
    '',
    table(
      ['path', 'calls in flight', 'keys/call', 'lookups/round', 'lookups/s (median)', 'lookups/s per round', 'call p50 µs', 'call p99 µs', 'CPU µs/lookup', 'misses'],
      readRows,
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
    `Ratios of lookups/s (index / raw; above 1 the index is faster), same lookups and callers: of the median rounds, and round by round with their median (the paths of a round met the same state of the machine); the last column compares CPU per lookup (raw \`db.get\` / index):`,
    '',
    table(
      [
        'lookup',
        'callers',
        'index / raw `db.get`',
        'per round',
        `index / raw MultiGet (${config.multiGetKeys} keys x ${config.multiGetInFlight})`,
        'per round',
        'CPU: raw `db.get` / index',
      ],
      ratioRows,
      ['l', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
    `Where the data was (raw read-only instances, all shards): ${size(memBytes)} in memtables (the unflushed WAL, replayed at open), ` +
      `${size(sstBytes)} in table files${sstBytes === 0 ? ': at this volume no primary filled its write buffer, so these reads hit memtables, not SSTs' : ''}. ` +
      `Opening those read-only instances (what a reader open or refresh costs on this data: WAL of ${r.wal.map((w) => size(w.walBytes)).join(', ')} per shard) took ` +
      `${r.rawOpenNs.map((n) => ms(n, 0)).join(', ')} ms.`,
    '',
  )

  // ---- 3
  out(
    '## 3. Refresh cost against an unflushed WAL',
    '',
    `A read-write primary (primary settings) stays open on a fresh directory holding N unflushed puts (40-byte keys, 40-byte values, ` +
      `${putsPerBatch} puts per write batch). A read-only instance of the directory (readers' settings, maxOpenFiles -1: what a reader open or ` +
      `refresh does) is opened and closed ${config.refreshRepeats} times after one untimed open; medians of the ${config.refreshRepeats}. Each ` +
      `instance is checked to see the last put (untimed). The last row is the largest N again after \`primary.flush()\`.`,
    '',
    table(
      ['unflushed puts', 'state', 'WAL bytes', 'SST files', 'open ms (median)', 'close ms (median)', 'open+close ms (median)', 'open+close ms min..max'],
      r.refresh.map((row) => {
        const totals = row.samples.map((s) => s.openNs + s.closeNs)
        return [
          int(row.records),
          row.flushed ? 'after flush' : 'unflushed',
          size(row.walBytes),
          String(row.sstFiles),
          ms(row.medianOpenNs),
          ms(row.medianCloseNs),
          ms(row.medianTotalNs),
          `${ms(Math.min(...totals))}..${ms(Math.max(...totals))}`,
        ]
      }),
      ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
  )
  const unflushed = r.refresh.filter((x) => !x.flushed)
  const largest = unflushed[unflushed.length - 1]
  const flushed = r.refresh.find((x) => x.flushed)
  const empty = unflushed[0]
  if (largest !== undefined && flushed !== undefined && empty !== undefined) {
    out(
      `With ${int(largest.records)} unflushed puts a refresh costs ${fixed(largest.medianTotalNs / empty.medianTotalNs, 1)}x the empty-WAL open; ` +
        `after the flush, ${fixed(flushed.medianTotalNs / empty.medianTotalNs, 1)}x (${ms(largest.medianTotalNs)} ms -> ${ms(flushed.medianTotalNs)} ms).`,
      '',
    )
  }
  out(
    '## 4. Write-acknowledged -> visible at a reader',
    '',
    `A writer-mode index writes batches of 100 metas back to back to one partition for ${quick ? 0.25 : 1} s of warm-up then ${quick ? 1.5 : 6} s; one meta of every 10th ` +
      'acknowledged batch is read back, either by a reader-mode index on the same root (what another process runs; one reader) with ' +
      '`after: token` (by default it follows the shard\'s write-ahead logs: its stale view merged with what one read of the logs ' +
      'found; with `freshness.followLogs: false` it waits until its reader has refreshed past the token), or by the writing index ' +
      'itself (`fresh`), which a stale reader merged with the memory of recent writes serves at once (or the primary) while the ' +
      'reader refreshes. ' +
      'Latency: from the acknowledgement to the answer; only the batches written after the warm-up count (its samples are ' +
      'read and checked too: the first reads of the reader-mode index just opened, and of code run for the first time, are not ' +
      'the steady state measured here).',
    '',
    table(
      ['read path', 'flush policy', 'batches', 'metas/s written', 'samples', 'p50 ms', 'p99 ms', 'max ms'],
      r.visible.map((v) => [v.path, v.label, int(v.batches), int(v.metasPerSecond), int(v.samples), fixed(v.p50Ms, 2), fixed(v.p99Ms, 2), fixed(v.maxMs, 2)]),
      ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
  )
  out(
    '## 5. Range reads against point reads, and scans',
    '',
    'A lone caller on the index of (2) (before it closed), lookup by lookup in turn: `getRangeByTime` (the first and last ' +
      'meta of a 1-second range: two seeks, run at once on one view) against `getByMsgId`, and the binding doing the same ' +
      'work on the same shard directories: two iterators of one entry at once (forward and reverse) against one `db.get`. ' +
      'The binding\'s iterator costs three native calls (open, read, close) where `db.get` costs one.',
    '',
    table(
      ['path', 'calls', 'p50 µs', 'p99 µs'],
      r.ranges.map((x) => [x.path, int(x.calls), fixed(x.p50Us, 1), fixed(x.p99Us, 1)]),
      ['l', 'r', 'r', 'r'],
    ),
    '',
  )
  const [ir, ip, rr, rp] = r.ranges
  if (ir && ip && rr && rp) {
    out(
      `Ratios of p50: index range / index point **${fixed(ir.p50Us / ip.p50Us, 2)}x**; raw range / raw point ${fixed(rr.p50Us / rp.p50Us, 2)}x; ` +
        `index range / raw range ${fixed(ir.p50Us / rr.p50Us, 2)}x.`,
      '',
    )
  }
  out(
    'Scans, on the same index and raw readers: each of the data set\'s partitions scanned whole (`scanByTime` over all ' +
      'time, every entry taken by a lone consumer) by the index and by the binding\'s own iterator over the same by-time ' +
      `keys, in turn, the order alternating; ${r.scans[0]?.scans ?? 0} scans of each path. CPU is the process's (every thread) per entry.`,
    '',
    table(
      ['path', 'scans', 'entries', 'entries/s', 'CPU µs/entry'],
      r.scans.map((x) => [x.path, int(x.scans), int(x.entries), int(x.entriesPerS), fixed(x.cpuUsPerEntry, 2)]),
      ['l', 'r', 'r', 'r', 'r'],
    ),
    '',
  )
  const [is, rs] = r.scans
  if (is && rs) out(`Ratio of entries/s: index scan / raw iterator **${fixed(is.entriesPerS / rs.entriesPerS, 2)}x**.`, '')
  out(
    '## 6. The mixed workload: one writer, 1,000 readers',
    '',
    `Per configuration, in a child process of its own (so that peak RSS is its own): a writer-mode index (one shard, one ` +
      `partition prefilled with 100,000 metas) first runs the writer alone (batches of 100 metas back to back), then the ` +
      `writer and ${int(r.mixedOptions.callers)} callers looping \`getByMsgId\` on msgIds already written, then the writer alone ` +
      `again, each measured for ${r.mixedOptions.seconds} s after ${r.mixedOptions.warmup} s of warm-up; the writer's rate alone is the ` +
      'mean of its two windows (each in parentheses), around the mixed window in time and in the index\'s size, where one ' +
      `window before it would move from child to child with the compactions; ${r.mixedOptions.rounds} round(s), alternating, medians ` +
      '(ranges in parentheses). `fresh` is the default of writer mode (read-your-writes); `primary` reads only the primary ' +
      '(the original design\'s reads); `fresh, no memory of recent writes` is `freshness.recentWritesBytes: 0` (fresh reads a ' +
      'stale reader cannot serve go to the primary); `bounded` allows a view 1 s old. The `getRangeByTime` and ' +
      '`scanByTime` rows run the same with callers looping range reads, or scans (every entry consumed; a read is a ' +
      'scan), instead, each over the window of 100 metas from a uniform acknowledged one (most of them written long ' +
      'before: a consumer seeking by time), against the `primary`-only configuration of the same reads. ' +
      'Where the reads were answered comes ' +
      'from `stats().shards[i].served`. Cores busy: the child\'s CPU time (user + system, every thread; not the reader ' +
      'child processes of placement `process`) per second of the mixed window and of the writer\'s first window alone, with ' +
      'RocksDB\'s background threads (flushes and compactions) in parentheses. In the writer\'s second window alone, the ' +
      'readers of the mixed window (their worker thread or child process) and the memory of recent writes are still there, idle.',
    '',
    ...r.mixed,
    '',
    'Where the main thread\'s time goes in the mixed window (`npx tsx bench/placement.ts --profile`): V8\'s sampling ' +
      'profiler (every 500 µs) in runs of their own, one per configuration, each sample counted by the kind of code it ' +
      'was in. `binding native`: the binding\'s native functions called from the main thread (a read or write batch ' +
      'hands its keys to RocksDB there, reading each key\'s properties through N-API, before the work leaves for ' +
      'libuv\'s pool); `binding JS`: its JavaScript; `rockvisor`: this package; `node`: Node\'s own code; `idle`: ' +
      'waiting for I/O.',
    '',
    ...r.mainThread,
    '',
  )
  out(`Total bench time: ${fixed((performance.now() - t0) / 1000, 1)} s.`, '')
  return lines.join('\n')
}

main().then(
  async (md) => {
    process.stdout.write(md)
    await writeFile(outFile, md)
    progress(`report written to ${outFile}`)
  },
  (e: unknown) => {
    progress(`FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
    process.exitCode = 1
  },
)
