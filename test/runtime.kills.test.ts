/**
 * The edges of src/runtime.ts that the supervision suites reach only loosely, found by mutation testing (TESTING.md,
 * "Mutation testing"), on real RocksDB with a ManualClock: the exact moment maintenance retires an idle or an old
 * reader, what `faults.crash` counts, how stats name each state of a shard, that the supervisors' backoffs run on the
 * index's clock, that a recovered pool serves again in reader mode, what a throwing listener's warning says, which
 * failures of an open give up at once (a corrupted MANIFEST: the primary's yes, a reader's no; a failure of the first
 * read of the view's state that is not damage: no; a reader's, also under a root whose path names a CURRENT file: no),
 * a reader-mode shard whose directory went away, the torn views an open discards (their reports, the limit of 8 in a
 * row), stats while a shard closes (a closing primary no longer counted among those serving), which role creates the
 * topic directory and with which RocksDB settings each role opens, a primary's open refused for permission, how an open
 * that meets a missing file is retried, that a reader's events never make a primary that gave up recover, that
 * `inspect` and `subscribe` (and its unsubscribe) deliver, where readers open with placement 'worker', a scan on a
 * reader retired under it, that a reader with a read in flight is never retired for idleness, that a degraded
 * reader-mode pool stays degraded through the events after it, that the view a refresh opened for a reader that failed
 * meanwhile is closed at once, and that a directory check refused for permission gives up at once.
 */
import { spawnSync } from 'node:child_process'
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { FaultInjector, ManualClock, openIndex, rocksEngine, ShardUnavailable, type Engine, type Index, type IndexOptions, type LifecycleEvent, type MessageMeta, type OpenOptions } from '../src/index.js'
import { decodeKey, epochSlots, sequenceKey, sequenceValue } from '../src/keys.js'
import { ReaderWorkers } from '../src/reader-workers.js'
import { viewCheck } from '../src/views.js'
import { recordInspection } from './support/coverage.js'
import { removeDir, tempDir } from './support/tmp.js'
import { overridingHandles } from './support/engines.js'
import { drive, openHarness, orStillWaiting, shardStats, untilReaderCovers, waitFor, type Harness } from './support/harness.js'

const meta = (n: number): MessageMeta => ({ msgId: `m${n}`, timestamp: 1000 + n, segmentId: 0, offset: n, msgLen: 10 })
let h: Harness | undefined
/** Indexes opened beside the harness on its root: closed after the test, before the harness. */
const beside: Index[] = []
/** Temporary directories made by a test, removed after it (after the indexes in them closed). */
const scratch: string[] = []
const scratchDir = async (): Promise<string> => {
  const dir = await tempDir()
  scratch.push(dir)
  return dir
}
afterEach(async () => {
  for (const index of beside.splice(0)) await index.close()
  await h?.dispose()
  h = undefined
  for (const dir of scratch.splice(0)) await removeDir(dir)
})

/**
 * Another index on `root` (a reader-mode one, say), over `engine` (the real one by default) under a FaultInjector, on
 * its own ManualClock, with its lifecycle events recorded and a shard's stats at hand.
 */
const openBeside = async (root: string, options: Partial<IndexOptions>, engine?: Engine) => {
  const clock = new ManualClock(1_000_000)
  const index = await openIndex({ root, clock, engine: new FaultInjector(engine), inspect: recordInspection, ...options })
  beside.push(index)
  const events: LifecycleEvent[] = []
  index.subscribe((e) => events.push(e))
  return { index, clock, events, stats: (id: string) => index.stats().shards.find((s) => s.id === id)! }
}

describe('pool maintenance on the clock', () => {
  it('should retire a reader idle for exactly idleMs above min, and not a millisecond before', async () => {
    h = await openHarness({ readers: { min: 1, max: 2, growAt: 1, idleMs: 1_000, maxLifetimeMs: 1_000_000 }, maintenanceIntervalMs: 100 })
    const start = h.clock.now()
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1)
    // Reads queue up and the pool grows to max; the clock stands still, so every use is at `start`.
    for (let round = 0; round < 50 && (shardStats(h, 't', 1).readers.serving ?? 0) < 2; round++) {
      await Promise.all(Array.from({ length: 16 }, () => h!.index.getByMsgId('t', 1, 'm1')))
    }
    await waitFor(() => shardStats(h!, 't', 1).views.length === 2)
    expect(h.clock.now()).toBe(start)
    const n = h.events.length
    // Maintenance ticks every 100 ms from the start: the tick at start + 1000 is the first that sees 1000 ms idle.
    await h.clock.advance(999)
    expect(h.events.slice(n).filter((e) => e.type === 'retired')).toEqual([])
    await h.clock.advance(1)
    // (Bounded waits: the retirement closes a real handle first, and a mutant that never retires fails in 2 s.)
    await waitFor(() => h!.events.slice(n).some((e) => e.type === 'retired'), 2_000)
    await waitFor(() => shardStats(h!, 't', 1).views.length === 1)
    // The other reader is at min now: idle as long as it likes, it stays.
    await h.clock.advance(10_000)
    expect(h.events.slice(n).filter((e) => e.type === 'retired').length).toBe(1)
    expect(shardStats(h, 't', 1).readers).toEqual({ serving: 1 })
  })

  it('should recycle a reader at exactly maxLifetimeMs even at min, replacing it', async () => {
    h = await openHarness({ readers: { min: 1, max: 1, idleMs: 1, maxLifetimeMs: 5_000 }, maintenanceIntervalMs: 100 })
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).views.length === 1)
    const [first] = shardStats(h, 't', 1).views
    expect(first!.ageMs).toBe(0)
    const n = h.events.length
    // Ticks come every 100 ms from the index's start; the reader opened at a tick's time or between two.
    await h.clock.advance(4_900)
    expect(shardStats(h, 't', 1).views[0]).toMatchObject({ reader: first!.reader, ageMs: 4_900 })
    expect(h.events.slice(n).filter((e) => e.type === 'retired')).toEqual([])
    // Idle at min is never retired for idleness (idleMs 1): only the lifetime ends it.
    await h.clock.advance(100)
    await waitFor(() => h!.events.slice(n).some((e) => e.type === 'retired' && e.actor === first!.reader), 2_000)
    await waitFor(() => shardStats(h!, 't', 1).views.some((v) => v.reader !== first!.reader))
    expect(shardStats(h, 't', 1).readers).toEqual({ serving: 1 })
  })
})

describe('faults.crash', () => {
  it('should count the handles it crashed: the primary, every reader, one reader, or none', async () => {
    h = await openHarness({ readers: { min: 2, max: 2 }, supervision: { primary: { backoff: { minMs: 100, jitter: 0 } }, readers: { backoff: { minMs: 100, jitter: 0 } } } })
    expect(h.index.faults.crash('t', 1, 'primary')).toBe(0)
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).views.length === 2)
    expect(h.index.faults.crash('t', 1, 'reader-7')).toBe(0)
    const n = h.events.length
    expect(h.index.faults.crash('t', 1, 'reader-2')).toBe(1)
    await h.event((e) => e.type === 'failed' && e.actor === 'reader-2', n)
    expect(h.events.slice(n).filter((e) => e.type === 'failed').map((e) => e.actor)).toEqual(['reader-2'])
    expect(h.index.faults.crash('t', 1, 'readers')).toBe(1)
    await h.event((e) => e.type === 'failed' && e.actor === 'reader-1', n)
    expect(h.index.faults.crash('t', 1, 'primary')).toBe(1)
    await h.event((e) => e.type === 'failed' && e.actor === 'primary', n)
    expect(h.index.faults.crash('t', 1, 'primary')).toBe(0)
    expect(h.events.slice(n).find((e) => e.type === 'failed' && e.actor === 'primary')?.detail).toMatch(/^injected crash of primary in /)
  })
})

describe('stats', () => {
  it('should give the cause of a primary that gave up on an error that is not a StorageFailure', async () => {
    let failing = false
    const engine: Engine = {
      open: async (path, options) => {
        if (failing && !options.readOnly) throw new Error('disk on fire')
        return rocksEngine.open(path, options)
      },
    }
    h = await openHarness({ readers: { min: 0 }, supervision: { primary: { intensity: { maxRestarts: 1, withinMs: 60_000 }, backoff: { minMs: 100, jitter: 0 } } } }, engine)
    await h.index.batchPut('t', 1, [meta(1)])
    failing = true
    const n = h.events.length
    h.index.faults.crash('t', 1, 'primary')
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    await h.clock.advance(100)
    await h.event((e) => e.type === 'failed' && e.actor === 'shard', n)
    // An engine of the user's (the Engine interface) may throw any error: reason io, the shard's directory, its message.
    expect(shardStats(h, 't', 1).cause).toEqual({ reason: 'io', path: h.index.locate('t', 1).dir, message: 'disk on fire' })
  })

  it('should name the shard state, the primary state and count readers by state, with totals', async () => {
    h = await openHarness({ readers: { min: 1, max: 1 }, supervision: { primary: { intensity: { maxRestarts: 1, withinMs: 60_000 }, backoff: { minMs: 100, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).views.length === 1)
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'running', pool: 'healthy', primary: 'ready', readers: { serving: 1 }, restarts: { primary: 0, readers: 0 } })
    expect(h.index.stats().totals).toEqual({ primaries: 1, readers: 1, handles: 2 })
    const dir = h.index.locate('t', 1).dir
    h.faults.failNext('open', 100, { role: 'primary', dir })
    const n = h.events.length
    h.index.faults.crash('t', 1, 'primary')
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'restarting', primary: 'waiting', restarts: { primary: 1 } })
    expect(h.index.stats().totals).toMatchObject({ primaries: 0, readers: 1 })
    await h.clock.advance(100)
    await h.event((e) => e.type === 'failed' && e.actor === 'shard', n)
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'failed', primary: 'none', cause: { reason: 'injected' } })
    h.faults.clear()
    h.index.recover()
    await h.event((e) => e.type === 'recovered' && e.actor === 'primary', n)
    await waitFor(() => shardStats(h!, 't', 1).primary === 'ready')
    expect(shardStats(h, 't', 1).state).toBe('running')
    expect(shardStats(h, 't', 1).cause).toBeUndefined()
    await h.index.close()
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'closed', primary: 'none', readers: {} })
    expect(h.index.stats().totals).toEqual({ primaries: 0, readers: 0, handles: 0 })
  })
})

describe('the supervisors on the index clock', () => {
  it('should wait out a primary restart backoff on the injected clock, not on the system clock', async () => {
    h = await openHarness({ readers: { min: 0 }, supervision: { primary: { intensity: { maxRestarts: 1, withinMs: 600_000 }, backoff: { minMs: 60_000, maxMs: 60_000, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    const n = h.events.length
    expect(h.index.faults.crash('t', 1, 'primary')).toBe(1)
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    expect(h.events.slice(n).find((e) => e.type === 'restarted')?.detail).toBe('after 60000 ms')
    await h.clock.advance(59_999)
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'restarting', primary: 'waiting' })
    await h.clock.advance(1)
    // (Bounded wait: the reopen is real I/O. Actors on the system clock would wait a real minute, and fail here.)
    await waitFor(() => shardStats(h!, 't', 1).primary === 'ready', 2_000)
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
  })
})

describe('a degraded reader-mode pool that recovers', () => {
  /**
   * A writer-mode harness holding m1, and beside it a reader-mode index of `readers` readers under restart intensity
   * 0 (the first reader crash degrades its pool) whose reader has served m1.
   */
  const degradable = async (readers: number) => {
    h = await openHarness({ readers: { min: 0 } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    const beside = await openBeside(h.root, {
      mode: 'reader',
      readers: { min: readers, max: readers },
      supervision: { readers: { intensity: { maxRestarts: 0, withinMs: 60_000 }, backoff: { minMs: 0, jitter: 0 } } },
    })
    expect(await beside.index.getByMsgId('t', 1, 'm1', { after: token })).toEqual(meta(1))
    return { ...beside, id: beside.index.locate('t', 1).id }
  }

  it('should fail reads with the cause while degraded, and after recover let a read wait for the new reader and drop the cause', async () => {
    const { index: reader, events, stats, id } = await degradable(1)
    // Restart intensity 0: the first reader crash degrades the pool, and in reader mode nothing is left to read from.
    expect(reader.faults.crash('t', 1, 'readers')).toBe(1)
    await waitFor(() => events.some((e) => e.type === 'degraded'))
    expect(stats(id)).toMatchObject({ pool: 'degraded', cause: { reason: 'injected' } })
    await expect(reader.getByMsgId('t', 1, 'm1')).rejects.toBeInstanceOf(ShardUnavailable)
    reader.recover()
    // Asked before the new reader has opened: the read waits for it instead of failing as unavailable.
    const read = reader.getByMsgId('t', 1, 'm1')
    expect(stats(id).readers).not.toHaveProperty('serving')
    expect(await read).toEqual(meta(1))
    expect(stats(id)).toMatchObject({ pool: 'healthy', readers: { serving: 1 } })
    // No cause at all: not a `cause` key holding undefined.
    expect('cause' in stats(id)).toBe(false)
  })

  it('should stay degraded, failing reads with the cause, through the events that follow (a serving reader it retires)', async () => {
    const { index: reader, events, stats, id } = await degradable(2)
    await waitFor(() => stats(id).readers.serving === 2)
    // One reader's crash exhausts the intensity (0); the pool retires the other, which was serving: its retirement
    // is announced after the degradation, and is no recovery.
    expect(reader.faults.crash('t', 1, 'reader-1')).toBe(1)
    await waitFor(() => events.some((e) => e.type === 'retired' && e.actor === 'reader-2'))
    expect(events.map((e) => e.type).slice(-2)).toEqual(['degraded', 'retired'])
    await waitFor(() => stats(id).views.length === 0)
    expect(stats(id)).toMatchObject({ pool: 'degraded', cause: { reason: 'injected' } })
    // Fails at once (the clock stands still), rather than waiting for a reader that will not come.
    await expect(reader.getByMsgId('t', 1, 'm1', { timeoutMs: 60_000 })).rejects.toBeInstanceOf(ShardUnavailable)
  })
})

describe('a throwing lifecycle listener', () => {
  it('should name the error (or the thrown value) in the warning text, and pass the error along', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    try {
      h = await openHarness()
      const bug = new TypeError('listener bug')
      h.index.subscribe(() => {
        throw bug
      })
      h.index.subscribe(() => {
        // eslint-disable-next-line @typescript-eslint/only-throw-error
        throw 'plain text'
      })
      await h.index.batchPut('t', 1, [meta(1)])
      const where = `a lifecycle listener of ${h.root} threw on the 'created' event of ${h.shardId('t', 1)} (shard)`
      const rest = 'The event reached the other listeners; later errors of this listener are not reported.'
      expect(warn.mock.calls).toEqual([
        [`rockvisor: ${where}: TypeError: listener bug. ${rest}`, bug],
        [`rockvisor: ${where}: plain text. ${rest}`, 'plain text'],
      ])
    } finally {
      warn.mockRestore()
    }
  })
})

describe('which failures of an open give up at once', () => {
  it("should restart, not give up on, a primary whose read of its view's state fails with a failure that is not damage", async () => {
    h = await openHarness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 100, maxMs: 100, jitter: 0 } } } })
    // The first read of a fresh primary's handle is that of its view's state (sequence, epochs, identity).
    h.faults.failNext('read', 1, { role: 'primary' })
    const write = await drive(h.clock, h.index.batchPut('t', 1, [meta(1)], { timeoutMs: 3_600_000 }))
    expect(write.error).toBeUndefined()
    expect(h.faults.injected.read).toBe(1)
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'running', primary: 'ready', restarts: { primary: 1 } })
  })

  /**
   * A closed writer-mode root whose shard t/1 holds m1 and a MANIFEST overwritten with garbage (CURRENT still names
   * it, so the layout check passes and RocksDB's own open meets the damage); `restore` puts the MANIFEST back.
   */
  const corruptedManifest = async (root?: string) => {
    const writer = root === undefined ? (h = await openHarness({ readers: { min: 0 } })).index : (await openBeside(root, { readers: { min: 0 } })).index
    await writer.batchPut('t', 1, [meta(1)])
    const { dir, id } = writer.locate('t', 1)
    await writer.close()
    const file = join(dir, (await readdir(dir)).find((name) => name.startsWith('MANIFEST-'))!)
    const whole = await readFile(file)
    await writeFile(file, Buffer.alloc(whole.length, 0x5a))
    return { root: root ?? h!.root, dir, id, restore: () => writeFile(file, whole) }
  }

  it("should give up at once on a primary whose RocksDB open meets a corrupted MANIFEST, with RocksDB's cause", async () => {
    const { root, dir, id } = await corruptedManifest()
    const { index, events, stats } = await openBeside(root, { readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 100, jitter: 0 } } } })
    const err = await index.batchPut('t', 1, [meta(2)]).catch((e: unknown) => e)
    expect(err).toMatchObject({ cause: { reason: 'corruption', path: dir } })
    // The clock stands still: a primary restarted under backoff would never get here (bounded wait).
    await waitFor(() => events.some((e) => e.type === 'failed' && e.actor === 'shard'), 2_000)
    expect(events.filter((e) => e.type === 'restarted')).toEqual([])
    expect(stats(id)).toMatchObject({ state: 'failed', restarts: { primary: 0 }, cause: { reason: 'corruption', path: dir } })
    expect(stats(id).cause!.message).toContain('MANIFEST')
  })

  // The second root: only RocksDB's own words for a CURRENT without its newline make a reader's corruption fatal, not
  // a path that names a CURRENT file (RocksDB's message names the file).
  it.each([
    ['', async () => undefined],
    [', also under a root whose path names a CURRENT file', async () => join(await scratchDir(), 'CURRENT file')],
  ])('should restart a reader whose open meets a corrupted MANIFEST under backoff (a live primary may be rewriting it), and serve once it is whole%s', async (_, rootOf) => {
    const { root, id, restore } = await corruptedManifest(await rootOf())
    const { index, clock, events, stats } = await openBeside(root, { mode: 'reader', readers: { min: 1, max: 1 }, supervision: { readers: { backoff: { minMs: 100, jitter: 0 } } } })
    const first = index.getByMsgId('t', 1, 'm1').catch((e: unknown) => e)
    await waitFor(() => events.some((e) => e.type === 'restarted' && e.actor === 'reader-1'), 2_000)
    expect(events.find((e) => e.type === 'failed' && e.actor === 'reader-1')?.detail).toMatch(/^storage failure \(corruption\) in .*MANIFEST/)
    expect(stats(id)).toMatchObject({ pool: 'healthy', restarts: { readers: 1 } })
    expect(events.filter((e) => e.type === 'degraded' || (e.type === 'failed' && e.actor === 'shard'))).toEqual([])
    await restore()
    await clock.advance(100)
    await waitFor(() => stats(id).readers.serving === 1, 2_000)
    await first
    expect(await index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
  })

  it('should retry a primary whose directory check fails with an I/O error (neither corruption nor permission) under backoff', async () => {
    h = await openHarness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 100, jitter: 0 } } } })
    // The topic's TOPIC marker is a directory: reading it fails with EISDIR, reason io.
    const marker = join(h.root, 't', 'TOPIC')
    await mkdir(marker, { recursive: true })
    const write = h.index.batchPut('t', 1, [meta(1)], { timeoutMs: 3_600_000 })
    await waitFor(() => h!.events.some((e) => e.type === 'restarted' && e.actor === 'primary'), 2_000)
    expect(h.events.find((e) => e.type === 'failed' && e.actor === 'primary')?.detail).toContain('EISDIR')
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'restarting', restarts: { primary: 1 } })
    await rm(marker, { recursive: true })
    await h.clock.advance(100)
    await write
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'running', primary: 'ready' })
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
  })
})

describe('a reader-mode shard whose database went away', () => {
  it('should fail its reader with reason missing and the message naming the directory, not open it', async () => {
    h = await openHarness({ readers: { min: 0 } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    const { dir, id } = h.index.locate('t', 1)
    // The real engine, counting the opens RocksDB is asked for.
    let opens = 0
    const counting: Engine = { open: (path, options) => (opens++, rocksEngine.open(path, options)) }
    const { index: reader, clock, events, stats } = await openBeside(
      h.root,
      { mode: 'reader', readers: { min: 1, max: 1 }, supervision: { readers: { intensity: { maxRestarts: 1, withinMs: 60_000 }, backoff: { minMs: 100, jitter: 0 } } } },
      counting,
    )
    expect(await reader.getByMsgId('t', 1, 'm1', { after: token })).toEqual(meta(1))
    await h.index.close()
    await rm(dir, { recursive: true })
    const before = opens
    reader.faults.crash('t', 1, 'readers')
    await waitFor(() => events.some((e) => e.type === 'restarted' && e.actor === 'reader-1'))
    await clock.advance(100)
    // The reopen finds no database: the second failure exhausts the intensity (1), the pool degrades with its cause.
    await waitFor(() => events.some((e) => e.type === 'degraded'), 2_000)
    const message = `no database in ${dir} yet: its writer has not created it`
    expect(stats(id).cause).toEqual({ reason: 'missing', path: dir, message })
    expect(events.filter((e) => e.type === 'failed').map((e) => [e.actor, e.detail])).toEqual([
      ['reader-1', `injected crash of reader-1 in ${id}`],
      ['reader-2', message],
    ])
    // RocksDB was never asked to open the directory that is not there.
    expect(opens).toBe(before)
  })
})

describe('torn views at a reader open', () => {
  /**
   * The real engine, whose readers' view checks see, while `tearing.on`, the newest flush epoch 20 alone in its
   * slot: epochs 1 to 19 missing, as if a flush raced every open.
   */
  const tearing = { on: false }
  const tearingEngine = overridingHandles({
    reader: (handle) => ({
      getMany: async (keys) => {
        const values = await handle.getMany(keys)
        // (The open's read of the view state: the sequence, the identity and every epoch slot.)
        if (!tearing.on || keys.length < epochSlots || decodeKey(keys[0]!).view !== 'sequence') return values
        return values.map((value, i) => {
          const key = decodeKey(keys[i]!)
          if (key.view !== 'epoch') return value
          return key.slot === 20 ? sequenceValue(20) : undefined
        })
      },
    }),
  })
  afterEach(() => {
    tearing.on = false
    viewCheck.enabled = true
  })

  /** A writer-mode harness whose reader serves m1 (sequence 1); then every view is torn and the reader crashed. */
  const reopenTorn = async () => {
    h = await openHarness({ readers: { min: 1, max: 1 }, supervision: { readers: { backoff: { minMs: 100, jitter: 0 } } } }, tearingEngine)
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1)
    tearing.on = true
    const n = h.events.length
    h.index.faults.crash('t', 1, 'readers')
    await h.event((e) => e.type === 'restarted' && e.actor === 'reader-1', n)
    await h.clock.advance(100)
    return n
  }
  const what = 'view of sequence 1 misses flush epoch(s) 1, 2, 3, 4, 5, 6, 7, 8 (a flush raced the open)'

  it('should discard 8 torn views in a row, each reported with its first 8 missing epochs, then fail the open', async () => {
    const n = await reopenTorn()
    // (Bounded wait: an open that never gives up reopens for ever.)
    await waitFor(() => h!.events.slice(n).some((e) => e.type === 'failed' && e.actor === 'reader-2'), 5_000)
    const dir = h!.index.locate('t', 1).dir
    expect(h!.events.slice(n).filter((e) => e.type === 'torn-view' || e.type === 'failed').map((e) => [e.type, e.actor, e.detail])).toEqual([
      ['failed', 'reader-1', `injected crash of reader-1 in ${h!.shardId('t', 1)}`],
      ...Array.from({ length: 8 }, () => ['torn-view', 'reader-2', `${what}: discarded, reopening`]),
      ['failed', 'reader-2', `8 torn views in a row opening ${dir}: the primary flushes faster than a view can open`],
    ])
    expect(shardStats(h!, 't', 1)).toMatchObject({ integrity: { tornViews: 8 }, views: [] })
    // Whole views again: the replacement, after its backoff, serves.
    tearing.on = false
    await h!.clock.advance(200)
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1, 2_000)
    expect(shardStats(h!, 't', 1).integrity.tornViews).toBe(8)
  })

  it('should serve a torn view with the view check off, reported as served', async () => {
    viewCheck.enabled = false
    const n = await reopenTorn()
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1, 2_000)
    expect(h!.events.slice(n).filter((e) => e.type === 'torn-view').map((e) => [e.actor, e.detail])).toEqual([['reader-2', `${what}: served, the view check is off`]])
  })
})

describe('stats while the index closes', () => {
  it('should show a shard whose primary is still closing as closing, and as closed once it closed', async () => {
    // The primary's handle closes when the test lets it (then for real).
    let letGo: () => void = () => {}
    const released = new Promise<void>((resolve) => (letGo = resolve))
    let closeAsked = false
    const engine = overridingHandles({
      primary: (handle) => ({
        close: async () => {
          closeAsked = true
          await released
          return handle.close()
        },
      }),
    })
    h = await openHarness({ readers: { min: 1, max: 1 } }, engine)
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1)
    let closed = false
    const closing = h.index.close().then(() => (closed = true))
    try {
      await waitFor(() => closeAsked)
      expect(closed).toBe(false)
      expect(shardStats(h, 't', 1)).toMatchObject({ state: 'closing', primary: 'closing', readers: {} })
      // A primary that is closing serves nothing: it is no longer counted among those serving.
      expect(h.index.stats().totals.primaries).toBe(0)
    } finally {
      letGo()
    }
    await closing
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'closed', primary: 'none' })
  })
})

// Found by run R (TESTING.md): which role creates the topic directory and with which RocksDB settings each role
// opens, a primary's open refused for permission, and how an open that meets a missing file is retried.
describe('the topic directory', () => {
  it("should be created with its TOPIC file by a topic's primary, and never by a reader-mode index", async () => {
    h = await openHarness({ readers: { min: 0 } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    expect(await readFile(join(h.root, 't', 'TOPIC'), 'utf8')).toBe('t')
    const { index: reader, clock, events, stats } = await openBeside(h.root, {
      mode: 'reader',
      readers: { min: 1, max: 1, placement: 'in-process' },
      supervision: { readers: { intensity: { maxRestarts: 1, withinMs: 60_000 }, backoff: { minMs: 100, jitter: 0 } } },
    })
    expect(await reader.getByMsgId('t', 1, 'm1', { after: token })).toEqual(meta(1))
    // A reader-mode shard has no primary ('absent'), and runs.
    expect(stats(h.shardId('t', 1))).toMatchObject({ state: 'running', primary: 'none', readers: { serving: 1 } })
    await h.index.close()
    // The whole topic directory goes away; the reader's reopen finds no database, and creates nothing: a reader
    // checks a topic's TOPIC file, it never writes one.
    await rm(join(h.root, 't'), { recursive: true })
    const before = (await readdir(h.root, { recursive: true })).sort()
    reader.faults.crash('t', 1, 'readers')
    await waitFor(() => events.some((e) => e.type === 'restarted' && e.actor === 'reader-1'), 5_000)
    await clock.advance(100)
    await waitFor(() => events.some((e) => e.type === 'failed' && e.actor === 'reader-2'), 5_000)
    expect(events.find((e) => e.type === 'failed' && e.actor === 'reader-2')?.detail).toMatch(/^no database in /)
    expect((await readdir(h.root, { recursive: true })).sort()).toEqual(before)
  })
})

describe('the RocksDB settings of an open', () => {
  it("should open a primary with rocksdb.primary and a reader with rocksdb.reader, read-only", async () => {
    const opens: OpenOptions[] = []
    const recording: Engine = { open: (path, options) => (opens.push(options), rocksEngine.open(path, options)) }
    h = await openHarness(
      {
        readers: { min: 1, max: 1, placement: 'in-process' },
        rocksdb: { primary: { maxBackgroundJobs: 3 }, reader: { maxBackgroundJobs: 1 } },
      },
      recording,
    )
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    expect(await h.index.getByMsgId('t', 1, 'm1', { after: token })).toEqual(meta(1))
    // The pool's reader opens once the primary has (the read above may be served before it does).
    await waitFor(() => opens.some((o) => o.readOnly))
    const primary = opens.filter((o) => !o.readOnly)
    const readers = opens.filter((o) => o.readOnly)
    expect(primary.length).toBeGreaterThan(0)
    expect(readers.length).toBeGreaterThan(0)
    for (const o of primary) expect(o).toMatchObject({ maxOpenFiles: 10_000, maxBackgroundJobs: 3, maxWriteBufferNumber: 4 })
    for (const o of readers) expect(o).toMatchObject({ maxOpenFiles: -1, maxBackgroundJobs: 1, maxWriteBufferNumber: 2, createIfMissing: false })
  })
})

describe('a RocksDB open refused for permission', () => {
  it('should give up on the primary at once, with the cause, not restart it', async () => {
    h = await openHarness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 100, jitter: 0 } } } })
    h.faults.failNext('open', 1, { role: 'primary' }, { reason: 'permission' })
    const write = h.index.batchPut('t', 1, [meta(1)]).catch((e: unknown) => e)
    // The clock stands still: a primary restarted under backoff would never get here (bounded wait).
    await waitFor(() => h!.events.some((e) => e.type === 'failed' && e.actor === 'shard'))
    expect(await write).toMatchObject({ cause: { reason: 'permission' } })
    expect(h.events.filter((e) => e.type === 'restarted')).toEqual([])
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'failed', restarts: { primary: 0 }, cause: { reason: 'permission' } })
  })
})

describe('a directory check refused for permission', () => {
  /** `chattr` sets or clears the immutable attribute of `path`: true if it could (root, on a file system that has it). */
  const immutable = (path: string, on: boolean): boolean => spawnSync('chattr', [on ? '+i' : '-i', path]).status === 0

  // In this process, not as another user: root bypasses file modes, but not an immutable directory (EPERM). The
  // child-process test in failures.test covers the same refusal by file modes, as the unprivileged user nobody.
  it('should give up on the primary at once, with the cause, when the topic directory cannot be created', async (ctx) => {
    h = await openHarness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 100, jitter: 0 } } } })
    if (!immutable(h.root, true)) return ctx.skip()
    try {
      const write = h.index.batchPut('t', 1, [meta(1)]).catch((e: unknown) => e)
      // The clock stands still: a primary restarted under backoff would never get here (bounded wait).
      await waitFor(() => h!.events.some((e) => e.type === 'failed' && e.actor === 'shard'), 5_000)
      expect(await write).toMatchObject({ _tag: 'ShardUnavailable', cause: { reason: 'permission', path: join(h.root, 't') } })
      expect(h.events.filter((e) => e.type === 'restarted')).toEqual([])
      expect(shardStats(h, 't', 1)).toMatchObject({ state: 'failed', restarts: { primary: 0 }, cause: { reason: 'permission' } })
    } finally {
      immutable(h.root, false)
    }
  })
})

describe("an open that meets a file RocksDB's listing named but a flush deleted (reason missing)", () => {
  it("should open a reader again at once, up to 8 opens in a row, then fail it", async () => {
    h = await openHarness({ readers: { min: 1, max: 1, placement: 'in-process' }, supervision: { readers: { backoff: { minMs: 100, jitter: 0 } } } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    expect(await h.index.getByMsgId('t', 1, 'm1', { after: token })).toEqual(meta(1))
    // 7 in a row: the 8th open serves, and the reader never failed. (Events are matched from the crash on, whatever
    // the reader's id: a refresh under load may have come first.)
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1)
    const before = h.faults.injected.open
    h.faults.failNext('open', 7, { role: 'reader' }, { reason: 'missing' })
    let since = h.events.length
    expect(h.index.faults.crash('t', 1, 'readers')).toBe(1)
    await h.event((e) => e.type === 'restarted' && e.actor.startsWith('reader-'), since)
    await h.clock.advance(100)
    await waitFor(() => h!.faults.injected.open === before + 7 && shardStats(h!, 't', 1).readers.serving === 1)
    expect(h.events.slice(since).filter((e) => e.type === 'failed' && e.actor.startsWith('reader-'))).toHaveLength(1)
    // 8 in a row: the open fails with the 8th, and the reader restarts under backoff (the clock stands still).
    h.faults.failNext('open', 8, { role: 'reader' }, { reason: 'missing' })
    since = h.events.length
    expect(h.index.faults.crash('t', 1, 'readers')).toBe(1)
    await h.event((e) => e.type === 'restarted' && e.actor.startsWith('reader-'), since)
    const crashed = h.events.length
    await h.clock.advance(1_000)
    const failed = await h.event((e) => e.type === 'failed' && e.actor.startsWith('reader-'), crashed)
    expect(failed.detail).toContain('(missing)')
    expect(h.faults.injected.open).toBe(before + 15)
  })

  it('should restart a primary under backoff, not open it again at once', async () => {
    h = await openHarness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 100, jitter: 0 } } } })
    h.faults.failNext('open', 1, { role: 'primary' }, { reason: 'missing' })
    const write = h.index.batchPut('t', 1, [meta(1)], { timeoutMs: 3_600_000 })
    await waitFor(() => h!.events.some((e) => e.type === 'restarted' && e.actor === 'primary'))
    expect(shardStats(h!, 't', 1)).toMatchObject({ state: 'restarting', restarts: { primary: 1 } })
    await h.clock.advance(100)
    await write
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
  })
})

describe('what the supervisors announce', () => {
  it("should keep a shard whose primary gave up failing writes at once, whatever its readers announce meanwhile", async () => {
    h = await openHarness({ readers: { min: 1, max: 1 }, supervision: { primary: { intensity: { maxRestarts: 0, withinMs: 60_000 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1)
    h.faults.failNext('open', 1_000, { role: 'primary' })
    const n = h.events.length
    h.index.faults.crash('t', 1, 'primary')
    await h.event((e) => e.type === 'failed' && e.actor === 'shard', n)
    await expect(h.index.batchPut('t', 1, [meta(2)])).rejects.toBeInstanceOf(ShardUnavailable)
    // The reader crashes and comes back: its events (failed, restarted, opened) do not make the primary recover.
    const m = h.events.length
    h.index.faults.crash('t', 1, 'readers')
    await h.event((e) => e.type === 'restarted' && e.actor.startsWith('reader-'), m)
    await h.clock.advance(60_000)
    await h.event((e) => e.type === 'opened' && e.actor.startsWith('reader-'), m)
    // (The real-time bound only turns a write that would wait for a primary forever into a clear failure.)
    const outcome = await orStillWaiting(h.index.batchPut('t', 1, [meta(3)]).catch((e: unknown) => e))
    expect(outcome).toBeInstanceOf(ShardUnavailable)
  })

  it('should pass every actor inspection event to the inspect option, and stop calling a listener once unsubscribed', async () => {
    h = await openHarness({ readers: { min: 0 } })
    const root = join(h.root, 'another root')
    await mkdir(root)
    const inspected: string[] = []
    const index = await openIndex({ root, clock: new ManualClock(1_000_000), readers: { min: 0 }, inspect: (e) => inspected.push(e.type) })
    beside.push(index)
    const heard: string[] = []
    const unsubscribe = index.subscribe((e) => heard.push(`${e.type} ${e.actor}`))
    await index.batchPut('t', 1, [meta(1)])
    expect(inspected).toContain('@xstate.actor')
    expect(inspected).toContain('@xstate.snapshot')
    expect(heard).toContain('opened primary')
    unsubscribe()
    const before = heard.length
    // Another shard is created and its primary opens: announced, to nobody.
    const other = [...Array(64).keys()].find((p) => index.locate('t', p).id !== index.locate('t', 1).id)!
    await index.batchPut('t', other, [meta(2)])
    expect(index.stats().shards.length).toBe(2)
    expect(heard.length).toBe(before)
  })
})

describe('reader placement off the main thread', () => {
  it("should open only the readers in the workers: the primary's instance stays in the process", async () => {
    const before = ReaderWorkers.opened
    h = await openHarness({ readers: { min: 1, max: 1, placement: 'worker' } })
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1)
    expect(shardStats(h, 't', 1).primary).toBe('ready')
    expect(ReaderWorkers.opened - before).toBe(1)
  })
})

describe('a reader retired under a scan', () => {
  it('should let the scan finish on its view: the retirement waits for it, then closes the handle', async () => {
    h = await openHarness({ readers: { min: 1, max: 1, idleMs: 3_600_000, maxLifetimeMs: 5_000 }, maintenanceIntervalMs: 100 })
    // More entries than an iterator reads ahead: the scan goes back to its handle after the retirement.
    const all = Array.from({ length: 5_000 }, (_, i) => meta(i + 1))
    const { token } = await h.index.batchPut('t', 1, all)
    await untilReaderCovers(h, 't', 1, token, 'm1')
    const [view] = shardStats(h, 't', 1).views
    const served = shardStats(h, 't', 1).served.readers
    const scan = h.index.scanByTime('t', 1, 0, 10_000)[Symbol.asyncIterator]()
    expect((await scan.next()).value).toEqual(meta(1))
    expect(shardStats(h, 't', 1).served.readers).toBe(served + 1)
    const n = h.events.length
    await h.clock.advance(5_000 - view!.ageMs)
    // Retiring: it serves no new request, and its handle stays open for the scan.
    await waitFor(() => shardStats(h!, 't', 1).readers.retiring === 1)
    const rest: unknown[] = []
    for (let r = await scan.next(); !r.done; r = await scan.next()) rest.push(r.value)
    expect(rest).toEqual(all.slice(1))
    await h.event((e) => e.type === 'retired' && e.actor === view!.reader, n)
    await waitFor(() => shardStats(h!, 't', 1).views.every((v) => v.reader !== view!.reader))
  })
})

describe('idle retirement and reads in flight', () => {
  it('should never retire for idleness a reader that has a read in flight, however long since its last use', async () => {
    const gate = { held: false, waiting: [] as (() => void)[], on: [] as string[] }
    const engine = overridingHandles({
      reader: (handle, path) => ({
        withSnapshot: async (fn) => {
          if (gate.held) {
            gate.on.push(path)
            await new Promise<void>((resolve) => gate.waiting.push(resolve))
          }
          return handle.withSnapshot(fn)
        },
      }),
    })
    h = await openHarness({ readers: { min: 1, max: 2, growAt: 1, idleMs: 1_000, maxLifetimeMs: 1_000_000 }, maintenanceIntervalMs: 100, freshness: { recentWritesBytes: 0 } }, engine)
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    for (let round = 0; round < 50 && (shardStats(h, 't', 1).readers.serving ?? 0) < 2; round++) {
      await Promise.all(Array.from({ length: 16 }, () => h!.index.getRangeByTime('t', 1, 0, 10_000)))
    }
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 2)
    // Both readers serve; each is as fresh as the other needs for a bounded read.
    const release = (): void => {
      gate.held = false
      for (const go of gate.waiting.splice(0)) go()
    }
    gate.held = true
    try {
      const held = h.index.getRangeByTime('t', 1, 0, 10_000, { consistency: 'bounded', maxStalenessMs: 3_600_000 })
      await waitFor(() => gate.on.length === 1)
      const n = h.events.length
      // Long past idleMs: the idle reader goes (down to min), while the read is still held. Had the busy one been told
      // to retire, its retirement would wait for that read, and nothing would be retired yet.
      await h.clock.advance(5_000)
      await waitFor(() => h!.events.slice(n).some((e) => e.type === 'retired'), 2_000)
      expect(gate.waiting).toHaveLength(1)
      release()
      expect(await held).toEqual({ first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 1 } })
      expect(h.events.slice(n).filter((e) => e.type === 'retired')).toHaveLength(1)
    } finally {
      release()
    }
  })
})

describe('a refresh its reader no longer waits for', () => {
  it('should close the view the refresh opened for a reader that failed meanwhile, not leave it to the index close', async () => {
    h = await openHarness({ readers: { min: 0 } })
    const first = await h.index.batchPut('t', 1, [meta(1)])
    // Readers' handles whose view-state read (the MultiGet that begins with the sequence key) waits once armed.
    const hold = { armed: false, entered: false, release: () => {} }
    const engine = overridingHandles({
      reader: (handle) => ({
        getMany: async (keys) => {
          if (hold.armed && keys[0] !== undefined && Buffer.from(keys[0]).equals(sequenceKey)) {
            hold.armed = false
            hold.entered = true
            await new Promise<void>((resolve) => (hold.release = resolve))
          }
          return handle.getMany(keys)
        },
      }),
    })
    const { index: reader, events, stats } = await openBeside(
      h.root,
      { mode: 'reader', readers: { min: 1, max: 1 }, freshness: { followLogs: false }, supervision: { readers: { backoff: { minMs: 0, jitter: 0 } } } },
      engine,
    )
    const id = reader.locate('t', 1).id
    expect(await reader.getByMsgId('t', 1, 'm1', { after: first.token })).toEqual(meta(1))
    const second = await h.index.batchPut('t', 1, [meta(2)])
    hold.armed = true
    // The read needs a newer view: reader-1 refreshes, and the state read of its new view waits.
    const read = reader.getByMsgId('t', 1, 'm2', { after: second.token })
    await waitFor(() => hold.entered)
    expect(reader.stats().totals.handles).toBe(2)
    // reader-1 fails while its refresh opens (the refresh is abandoned), then the new view's state arrives.
    expect(reader.faults.crash('t', 1, 'reader-1')).toBe(1)
    hold.release()
    expect(await read).toEqual(meta(2))
    expect(events.some((e) => e.type === 'opened' && e.actor === 'reader-2')).toBe(true)
    // Only reader-2's view is open: the abandoned refresh's view was closed, not left open until the index closes.
    await waitFor(() => reader.stats().totals.handles === 1, 2_000)
    expect(stats(id).views.map((v) => v.reader)).toEqual(['reader-2'])
  })
})
