/**
 * Reader placement under a mixed workload:
 * `npx tsx bench/placement.ts [--seconds 8] [--warmup 2] [--callers 1000] [--rounds 1] [--profile]`.
 *
 * For each placement (`in-process`, `worker` with 1 thread, and for `fresh`, `process` with 1 child process) and each
 * read consistency (`fresh`, `bounded`, and `primary` in process as the original design's baseline), one child process
 * (so that peak RSS is its own, with that of its reader child processes, if any) runs, on a writer-mode index in a
 * temp root, one partition prefilled with 100,000 metas:
 *
 * 1. the writer alone: batches of 100 metas back to back for `--seconds` (after `--warmup`): metas/s; measured again
 *    after the mixed window (2.), the index larger, the compactions of the mixed window still running, and its
 *    readers (with their worker thread or child process) and the memory of recent writes still there, idle; the
 *    writer's rate alone is the mean of the two (the writer's rate alone moves with the index's size and its
 *    compactions: measured once, before, it moved by a fifth to two fifths between children of one run);
 * 2. the mixed workload: the same writer plus `--callers` concurrent callers looping `getByMsgId` on msgIds already
 *    written (uniform over every acknowledged one), measured for `--seconds` after `--warmup`: reads/s, metas/s,
 *    the share of read calls that went to readers (the rest went to the primary), misses (absent answers: must be
 *    0 for `fresh`), the reader opens per second (first opens and refreshes), the main thread's event-loop
 *    utilization, the cores the process kept busy (in the mixed window and the writer's first window alone; with the share of RocksDB's flushes and
 *    compactions: on 2 cores the writer alone keeps nearly both busy, so reads can only take CPU from it), and the
 *    child's peak RSS (with its reader child processes' RSS, sampled together, on Linux).
 *
 * Four more configurations run the same with callers looping `getRangeByTime`, then `scanByTime`, instead (the window
 * of 100 metas from a uniform acknowledged one; a scan reads all of them), `primary` and `fresh` in process: how many
 * of those stale readers serve under the writer (a window no write touched after a reader's view; README, Freshness
 * contract), and what they leave the writer.
 *
 * With `--rounds N` every configuration runs N times, the rounds alternating (each round in a rotated order, so
 * that a machine busy with something else meanwhile weighs on every configuration alike), and the table shows the
 * median of each column with the range of reads/s and writer metas/s. With `--profile` it instead samples the main
 * thread during the mixed window (see {@link mainThreadBench}) and prints where its time goes. Self-contained (it uses only the public API
 * and its FaultInjector's call counters); prints a table.
 */
import { fork } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { FaultInjector, openIndex, type MessageMeta } from '../src/index.js'
import { categories, startProfile, type Category } from './profile.js'

type Placement = 'in-process' | 'worker' | 'process'
type Consistency = 'fresh' | 'bounded' | 'primary'

interface Config {
  readonly placement: Placement
  readonly threads: number
  readonly consistency: Consistency
  /** `freshness.recentWritesBytes` (undefined: the default; 0: no memory of recent writes, fresh reads a stale
   * reader cannot serve go to the primary, as before that memory existed). */
  readonly recentWritesBytes?: number
  /** `rocksdb.compactionCpuPriority` (undefined: the default, `low`). */
  readonly compactionCpuPriority?: 'normal'
  /**
   * What the callers read: `getByMsgId` of a uniform acknowledged msgId (default); `range`: `getRangeByTime` of the
   * window of {@link rangeSpan} metas from a uniform acknowledged one (most of them written long before: a consumer
   * seeking by time); `scan`: `scanByTime` of the same window, every entry consumed (a read counts one scan).
   */
  readonly reads?: 'range' | 'scan'
  readonly seconds: number
  readonly warmup: number
  readonly callers: number
  /** Sample the main thread during the mixed window (bench/profile.ts): {@link Result.mainThread}. */
  readonly profile?: boolean
}

interface Cores {
  readonly all: number
  readonly background: number
}

interface Result extends Config {
  /** The writer's rate alone: the mean of {@link writerAloneBeforeMetasPerS} and {@link writerAloneAfterMetasPerS}. */
  readonly writerAloneMetasPerS: number
  /** The writer alone before the mixed window, and after it (the same as before with `profile`: not measured). */
  readonly writerAloneBeforeMetasPerS: number
  readonly writerAloneAfterMetasPerS: number
  readonly readsPerS: number
  readonly mixedMetasPerS: number
  /** Reads answered by a reader (from its view or from the memory of recent writes), as a share of all reads. */
  readonly readerShare: number
  /** Reads answered from the memory of recent writes, as a share of all reads. */
  readonly memoryShare: number
  readonly misses: number
  readonly elu: number
  /**
   * The main thread in the mixed window, as shares of its time (Linux's /proc/self/task/<pid>/schedstat; 0 elsewhere):
   * running on a core, and runnable but waiting for one (the rest it slept: idle, or blocked).
   */
  readonly mainOnCore: number
  readonly mainWaitingForCore: number
  /**
   * Cores busy: the process's CPU time (user + system, every thread; not a `process` placement's reader children)
   * per second, and of it RocksDB's background threads (flushes, compactions), writer alone and mixed.
   */
  readonly writerAloneCores: Cores
  readonly mixedCores: Cores
  readonly peakRssMiB: number
  /** Read-only opens per second (a reader's first open or a refresh) during the mixed workload. */
  readonly readerOpensPerS: number
  /** With `profile`: the main thread's time in the mixed window, by category (shares summing to 1). */
  readonly mainThread?: Record<Category, number>
}

const prefill = 100_000
/** Metas (and milliseconds) in the window of a `range` caller's read. */
const rangeSpan = 100
const batchSize = 100
const meta = (n: number): MessageMeta => ({ msgId: `msg-${n}`, timestamp: 1_700_000_000_000 + n, segmentId: Math.floor(n / 1_000_000), offset: n % 1_000_000, msgLen: 200 })
const batch = (from: number): MessageMeta[] => Array.from({ length: batchSize }, (_, i) => meta(from + i))

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}

/** The RSS of this process's child processes (the readers' of placement `process`), bytes: 0 where /proc has none. */
const childrenRss = (): number => {
  try {
    const pids = readFileSync(`/proc/self/task/${process.pid}/children`, 'utf8').trim().split(' ').filter(Boolean)
    return pids.reduce((sum, pid) => sum + Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4_096, 0)
  } catch {
    return 0
  }
}

/**
 * CPU time of RocksDB's background threads of this process (its flushes and compactions: threads named `rocksdb:*`),
 * seconds (Linux, whose clock ticks are 1/100 s; 0 where /proc has none).
 */
const rocksdbBackgroundSeconds = (): number => {
  let ticks = 0
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
      if (!stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).startsWith('rocksdb:')) continue
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ticks += Number(fields[11]) + Number(fields[12])
    }
  } catch {
    return 0
  }
  return ticks / 100
}

/** The main thread's time on a core and waiting in a run queue, seconds (Linux: /proc/self/task/<pid>/schedstat). */
const mainThreadSchedule = (): { onCore: number; waiting: number } => {
  try {
    const [onCore, waiting] = readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').trim().split(' ').map(Number)
    return { onCore: onCore! / 1e9, waiting: waiting! / 1e9 }
  } catch {
    return { onCore: 0, waiting: 0 }
  }
}

/** This process's RSS with its children's, bytes. */
const rss = (): number => process.memoryUsage.rss() + childrenRss()

/** One configuration, in this process. */
const runOne = async (config: Config): Promise<Result> => {
  let peakRss = rss()
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, rss())), 50)
  const root = await mkdtemp(join(tmpdir(), 'rockvisor-placement-'))
  // A fault injector that injects nothing: its counter of reader opens is the only reason it is here.
  const engine = new FaultInjector()
  const index = await openIndex({
    root,
    engine,
    shards: 1,
    readers: { placement: config.placement, workerThreads: config.threads },
    ...(config.recentWritesBytes === undefined ? {} : { freshness: { recentWritesBytes: config.recentWritesBytes } }),
    ...(config.compactionCpuPriority === undefined ? {} : { rocksdb: { compactionCpuPriority: config.compactionCpuPriority } }),
  })
  const served = () => index.stats().shards.reduce((a, sh) => ({ primary: a.primary + sh.served.primary, readers: a.readers + sh.served.readers, memory: a.memory + sh.served.memory }), { primary: 0, readers: 0, memory: 0 })
  const ms = (s: number) => s * 1_000
  try {
    let written = 0
    for (; written < prefill; written += 1_000) await index.batchPut('t', 0, Array.from({ length: 1_000 }, (_, i) => meta(written + i)))

    let stop = false
    const writer = async (): Promise<void> => {
      while (!stop) {
        await index.batchPut('t', 0, batch(written))
        written += batchSize
      }
    }
    /** Runs the loops until stopped; measures `seconds` after `warmup`: the writer's metas and `count()`. */
    const window = async (count: () => number, profile = false) => {
      await new Promise((resolve) => setTimeout(resolve, ms(config.warmup)))
      const stopProfile = profile ? await startProfile() : undefined
      const [w0, c0, t0, elu0, o0, cpu0] = [written, count(), performance.now(), performance.eventLoopUtilization(), engine.opened.reader, process.cpuUsage()]
      const background0 = rocksdbBackgroundSeconds()
      const schedule0 = mainThreadSchedule()
      const served0 = served()
      await new Promise((resolve) => setTimeout(resolve, ms(config.seconds)))
      const s = (performance.now() - t0) / 1_000
      const elu = performance.eventLoopUtilization(elu0).utilization
      const now = served()
      const [primary, readers, memory] = [now.primary - served0.primary, now.readers - served0.readers, now.memory - served0.memory]
      const all = Math.max(1, primary + readers + memory)
      const opensPerS = (engine.opened.reader - o0) / s
      const cpu = process.cpuUsage(cpu0)
      const cores = { all: (cpu.user + cpu.system) / 1e6 / s, background: (rocksdbBackgroundSeconds() - background0) / s }
      const schedule = mainThreadSchedule()
      const mainThread = await stopProfile?.()
      return {
        ...(mainThread === undefined ? {} : { mainThread }),
        cores,
        metasPerS: (written - w0) / s,
        countPerS: (count() - c0) / s,
        elu,
        mainOnCore: (schedule.onCore - schedule0.onCore) / s,
        mainWaitingForCore: (schedule.waiting - schedule0.waiting) / s,
        readerShare: (readers + memory) / all,
        memoryShare: memory / all,
        opensPerS,
      }
    }

    // 1. The writer alone.
    const alone = writer()
    const soloWindow = await window(() => 0)
    stop = true
    await alone

    // 2. The writer and the callers.
    stop = false
    let reads = 0
    let misses = 0
    let seed = 12345
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648)
    const caller = async (): Promise<void> => {
      while (!stop) {
        const windowed = config.reads !== undefined
        const n = Math.floor(random() * (windowed ? Math.max(1, written - rangeSpan) : written))
        const from = meta(n).timestamp
        const options = { consistency: config.consistency }
        let found: unknown
        if (config.reads === 'scan') {
          let entries = 0
          for await (const _ of index.scanByTime('t', 0, from, from + rangeSpan - 1, options)) entries++
          found = entries === rangeSpan ? true : undefined
        } else if (config.reads === 'range') found = await index.getRangeByTime('t', 0, from, from + rangeSpan - 1, options)
        else found = await index.getByMsgId('t', 0, `msg-${n}`, options)
        if (found === undefined) misses++
        reads++
      }
    }
    const loops = [writer(), ...Array.from({ length: config.callers }, caller)]
    const mixed = await window(() => reads, config.profile === true)
    stop = true
    await Promise.all(loops)

    // 3. The writer alone again (not with `profile`: those runs compare categories of the main thread's time only).
    let after = soloWindow.metasPerS
    if (config.profile !== true) {
      stop = false
      const again = writer()
      after = (await window(() => 0)).metasPerS
      stop = true
      await again
    }
    return {
      ...config,
      writerAloneMetasPerS: (soloWindow.metasPerS + after) / 2,
      writerAloneBeforeMetasPerS: soloWindow.metasPerS,
      writerAloneAfterMetasPerS: after,
      writerAloneCores: soloWindow.cores,
      mixedCores: mixed.cores,
      readsPerS: mixed.countPerS,
      mixedMetasPerS: mixed.metasPerS,
      readerShare: mixed.readerShare,
      memoryShare: mixed.memoryShare,
      misses,
      elu: mixed.elu,
      mainOnCore: mixed.mainOnCore,
      mainWaitingForCore: mixed.mainWaitingForCore,
      readerOpensPerS: mixed.opensPerS,
      peakRssMiB: Math.max(peakRss, rss()) / 2 ** 20,
      ...(mixed.mainThread === undefined ? {} : { mainThread: mixed.mainThread }),
    }
  } finally {
    clearInterval(sampler)
    await index.close()
    await rm(root, { recursive: true, force: true })
  }
}

/** Runs one configuration in a child process (its own heap and RSS) and returns what it measured. */
const inChild = (config: Config): Promise<Result> =>
  new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ['--child', JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    let result: Result | undefined
    child.on('message', (m: Result) => (result = m))
    child.on('error', reject)
    child.on('exit', (code) => (result !== undefined ? resolve(result) : reject(new Error(`the run ${JSON.stringify(config)} exited with code ${code}`))))
  })

const fmt = (n: number) => Math.round(n).toLocaleString('en-US')

/** What {@link placementBench} runs: seconds measured (after `warmup` seconds), callers, alternating rounds. */
export interface PlacementOptions {
  readonly seconds: number
  readonly warmup: number
  readonly callers: number
  readonly rounds: number
}

/**
 * Runs every configuration `rounds` times (each in a child process, the rounds alternating in a rotated order, so
 * that a machine busy with something else meanwhile weighs on every configuration alike) and returns the markdown
 * table of medians (with the range of reads/s and writer metas/s when there are several rounds).
 */
export const placementBench = async (options: PlacementOptions, progress: (line: string) => void = () => {}): Promise<string[]> => {
  const base = { seconds: options.seconds, warmup: options.warmup, callers: options.callers }
  const rounds = Math.max(1, options.rounds)
  const configs: Config[] = [
    { placement: 'in-process', threads: 1, consistency: 'primary', ...base },
    { placement: 'in-process', threads: 1, consistency: 'fresh', recentWritesBytes: 0, ...base },
    ...(['fresh', 'bounded'] as const).flatMap((consistency) => [
      { placement: 'in-process' as const, threads: 1, consistency, ...base },
      // What lowering the compaction threads' priority (the default) buys: the same with them left alone.
      ...(consistency === 'fresh' ? [{ placement: 'in-process' as const, threads: 1, consistency, compactionCpuPriority: 'normal' as const, ...base }] : []),
      { placement: 'worker' as const, threads: 1, consistency, ...base },
      ...(consistency === 'fresh' ? [{ placement: 'process' as const, threads: 1, consistency, ...base }] : []),
    ]),
    // Range reads and scans under the writer: only the primary, and `fresh` (stale readers serve windows no write
    // touched since).
    ...(['range', 'scan'] as const).flatMap((reads) => [
      { placement: 'in-process' as const, threads: 1, consistency: 'primary' as const, reads, ...base },
      { placement: 'in-process' as const, threads: 1, consistency: 'fresh' as const, reads, ...base },
    ]),
  ]
  const results: Result[][] = configs.map(() => [])
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < configs.length; k++) {
      const i = (k + round) % configs.length
      progress(`mixed workload: round ${round + 1}/${rounds}, ${describe(configs[i]!)}`)
      results[i]!.push(await inChild(configs[i]!))
    }
  }
  const med = (rs: Result[], f: (r: Result) => number) => {
    const v = rs.map(f).sort((a, b) => a - b)
    return v.length % 2 === 1 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2
  }
  const span = (rs: Result[], f: (r: Result) => number) => (rs.length > 1 ? ` (${fmt(Math.min(...rs.map(f)))}-${fmt(Math.max(...rs.map(f)))})` : '')
  const cores = (rs: Result[], f: (r: Result) => Cores) => `${med(rs, (r) => f(r).all).toFixed(2)} (${med(rs, (r) => f(r).background).toFixed(2)})`
  // Each configuration against the `primary`-only one of the same reads.
  const primaryOnly = (c: Config) => med(results[configs.findIndex((x) => x.consistency === 'primary' && x.reads === c.reads)]!, (r) => r.readsPerS)
  const lines = [
    '| placement | reads | consistency | reads/s | / `primary` reads/s | writer metas/s (mixed) | writer alone metas/s (before / after) | mixed / alone | reads off the primary | of them from memory | misses | reader opens/s | main thread busy (ELU) | main thread on a core / waiting for one | cores busy, writer alone before (RocksDB background) | cores busy, mixed (RocksDB background) | peak RSS MiB |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  configs.forEach((c, i) => {
    const rs = results[i]!
    const reads = (r: Result) => r.readsPerS
    const mixed = (r: Result) => r.mixedMetasPerS
    lines.push(
      `| ${label(c)} | ${c.reads === 'range' ? '`getRangeByTime`' : c.reads === 'scan' ? '`scanByTime`' : '`getByMsgId`'} | ${c.consistency}${c.recentWritesBytes === 0 ? ', no memory of recent writes' : ''}${c.compactionCpuPriority === 'normal' ? ', compactions at normal priority' : ''} | ${fmt(med(rs, reads))}${span(rs, reads)} | ${(med(rs, reads) / primaryOnly(c)).toFixed(2)}x | ${fmt(med(rs, mixed))}${span(rs, mixed)} | ${fmt(med(rs, (r) => r.writerAloneMetasPerS))} (${fmt(med(rs, (r) => r.writerAloneBeforeMetasPerS))} / ${fmt(med(rs, (r) => r.writerAloneAfterMetasPerS))}) | ${med(rs, (r) => r.mixedMetasPerS / r.writerAloneMetasPerS).toFixed(2)}x | ${(100 * med(rs, (r) => r.readerShare)).toFixed(1)}% | ${(100 * med(rs, (r) => r.memoryShare)).toFixed(1)}% | ${fmt(med(rs, (r) => r.misses))} | ${med(rs, (r) => r.readerOpensPerS).toFixed(1)} | ${med(rs, (r) => r.elu).toFixed(2)} | ${med(rs, (r) => r.mainOnCore).toFixed(2)} / ${med(rs, (r) => r.mainWaitingForCore).toFixed(2)} | ${cores(rs, (r) => r.writerAloneCores)} | ${cores(rs, (r) => r.mixedCores)} | ${fmt(med(rs, (r) => r.peakRssMiB))} |`,
    )
  })
  return lines
}

/**
 * `--profile`: where the main thread's time goes in the mixed window (bench/profile.ts), for `primary` and `fresh`
 * reads in process and `fresh` reads in a worker thread; each configuration `rounds` times (alternating, in child
 * processes as above), medians of each category's share. Sampling costs the process a little: these runs are apart
 * from the measured ones.
 */
export const mainThreadBench = async (options: PlacementOptions, progress: (line: string) => void = () => {}): Promise<string[]> => {
  const base = { seconds: options.seconds, warmup: options.warmup, callers: options.callers, profile: true }
  const configs: Config[] = [
    { placement: 'in-process', threads: 1, consistency: 'primary', ...base },
    { placement: 'in-process', threads: 1, consistency: 'fresh', ...base },
    { placement: 'worker', threads: 1, consistency: 'fresh', ...base },
  ]
  const rounds = Math.max(1, options.rounds)
  const results: Result[][] = configs.map(() => [])
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < configs.length; k++) {
      const i = (k + round) % configs.length
      progress(`main thread profile: round ${round + 1}/${rounds}, ${describe(configs[i]!)}`)
      results[i]!.push(await inChild(configs[i]!))
    }
  }
  const median = (values: number[]) => {
    const v = values.sort((a, b) => a - b)
    return v.length % 2 === 1 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2
  }
  const lines = [
    `| placement | consistency | reads/s | writer metas/s | main thread busy (ELU) | ${categories.join(' | ')} |`,
    `|---|---|---:|---:|---:|${categories.map(() => '---:').join('|')}|`,
  ]
  configs.forEach((c, i) => {
    const rs = results[i]!
    const share = (cat: Category) => `${(100 * median(rs.map((r) => r.mainThread?.[cat] ?? 0))).toFixed(1)}%`
    lines.push(
      `| ${label(c)} | ${c.consistency} | ${fmt(median(rs.map((r) => r.readsPerS)))} | ${fmt(median(rs.map((r) => r.mixedMetasPerS)))} | ${median(rs.map((r) => r.elu)).toFixed(2)} | ${categories.map(share).join(' | ')} |`,
    )
  })
  return lines
}

/** A configuration's placement as the table shows it: `in-process`, `worker x1`, `process x1`. */
const label = (c: Config): string => (c.placement === 'in-process' ? c.placement : `${c.placement} x${c.threads}`)

const describe = (c: Config): string =>
  `${label(c)}, ${c.reads === undefined ? '' : c.reads === 'range' ? 'getRangeByTime, ' : 'scanByTime, '}${c.consistency}${c.recentWritesBytes === 0 ? ' (no memory of recent writes)' : ''}${c.compactionCpuPriority === 'normal' ? ' (compactions at normal priority)' : ''}`

const main = async (): Promise<void> => {
  const childAt = process.argv.indexOf('--child')
  if (childAt >= 0) {
    // Run by hand (no parent to send to: to profile one configuration, say), it prints what it measured.
    const result = await runOne(JSON.parse(process.argv[childAt + 1]!) as Config)
    if (process.send !== undefined) process.send(result)
    else console.log(JSON.stringify(result))
    return
  }
  const options = { seconds: arg('seconds', 8), warmup: arg('warmup', 2), callers: arg('callers', 1_000), rounds: arg('rounds', 1) }
  if (process.argv.includes('--profile')) {
    for (const line of await mainThreadBench(options, (l) => console.error(l))) console.log(line)
    return
  }
  console.log(
    `reader placement, mixed workload: 1 writer (batches of ${batchSize}) + ${options.callers} getByMsgId callers, then the writer alone again, each ${options.seconds} s after ${options.warmup} s warm-up, ${prefill.toLocaleString('en-US')} metas prefilled, one partition; ${options.rounds} round(s), medians; node ${process.version}`,
  )
  for (const line of await placementBench(options, (l) => console.error(l))) console.log(line)
}

// Run as a script (or as a configuration's child process), not when run.ts imports it.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await main()
