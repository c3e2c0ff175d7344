/**
 * Ownership of native handles. Every handle is acquired inside its own Effect `Scope` (acquireRelease), named by a
 * {@link Lease} that the machines pass around, and released exactly once, whichever comes first: the machine asks
 * (`closeHandle`, a refresh swap), an open finishes after its actor was stopped, or the index closes (`releaseAll`).
 * A release waits for the reads in flight on the handle to finish (`inflight` reaches 0) unless forced.
 */
import { Effect, Exit, Scope, Semaphore } from 'effect'
import type { Lease } from '../actors/primary.js'
import type { StorageHandle } from './engine.js'

/** One open handle and what the data plane tracks about it. */
export interface LeaseRecord {
  readonly lease: Lease
  readonly handle: StorageHandle
  readonly role: 'primary' | 'reader'
  readonly shardId: string
  /** For readers: which reader actor holds it. */
  readonly readerId: string | undefined
  /** When it was opened (clock ms). */
  readonly openedAt: number
  /** The shard sequence its view reflects (a reader's is frozen at open; the primary's is where writes go on from). */
  seq: number
  /** The greatest flush epoch its view holds (see src/views.ts). */
  epoch: number
  /** Position of this open among the opens of the table, taken when the open started (see {@link HandleTable.ticket}). */
  readonly ticket: number
  /** Requests running on it now. */
  inflight: number
  /** Last time a request finished on it (clock ms). */
  lastUsedAt: number
  /** A failure on it was reported to its actor already (reported once, not once per request). */
  faulted: boolean
  /**
   * For a primary that found no identity entry in its shard (a new shard, or one written before identities existed):
   * the entry its next write batch adds (see `identityKey` in src/keys.ts); undefined once written, and for readers.
   */
  identityPending: Uint8Array | undefined
}

interface Held {
  readonly record: LeaseRecord
  readonly scope: Scope.Closeable
  releasing: Promise<void> | undefined
  drained: (() => void) | undefined
}

/**
 * The process-wide bound on concurrent native opens and refreshes: they share libuv's thread pool with every
 * primary of the process (measured: readers reopening in a loop starved a primary). `permits` resizes it.
 */
const processOpens = Semaphore.makeUnsafe(2)
export const openLimiter = (permits: number): (<A>(open: () => Promise<A>) => Promise<A>) => {
  Effect.runSync(processOpens.resize(permits))
  return (open) => Effect.runPromise(processOpens.withPermits(1)(Effect.tryPromise({ try: open, catch: (e) => e })))
}

/** The table of open handles of one index. */
export class HandleTable {
  readonly #held = new Map<Lease, Held>()
  /** Acquisitions still opening: close waits for them, so no handle outlives the index. */
  readonly #acquiring = new Set<Promise<unknown>>()
  #next = 1
  #tickets = 0

  /**
   * The ticket the next open will get. A handle whose `ticket` is at least the value read at some moment was opened
   * after that moment, so its view reflects every write acknowledged before it.
   */
  ticket(): number {
    return this.#tickets
  }

  /** Handles currently held. */
  get size(): number {
    return this.#held.size
  }

  /** The record of a lease still held, or undefined. */
  get(lease: Lease): LeaseRecord | undefined {
    return this.#held.get(lease)?.record
  }

  /**
   * Opens a handle with `open` inside a fresh scope and records it. If `signal` aborted while it was opening, the
   * handle is released at once and this rejects: the actor that asked is gone.
   */
  acquire(
    open: () => Promise<StorageHandle>,
    info: { role: 'primary' | 'reader'; shardId: string; readerId?: string; now: number },
    signal?: AbortSignal,
  ): Promise<LeaseRecord> {
    const acquiring = this.#acquire(open, info, signal)
    const settled: Promise<unknown> = acquiring.then(
      () => this.#acquiring.delete(settled),
      () => this.#acquiring.delete(settled),
    )
    this.#acquiring.add(settled)
    return acquiring
  }

  async #acquire(
    open: () => Promise<StorageHandle>,
    info: { role: 'primary' | 'reader'; shardId: string; readerId?: string; now: number },
    signal?: AbortSignal,
  ): Promise<LeaseRecord> {
    if (signal?.aborted) throw new Error('open abandoned: its actor stopped')
    const ticket = this.#tickets++
    const scope = Scope.makeUnsafe()
    let handle: StorageHandle
    try {
      handle = await Effect.runPromise(
        Scope.provide(scope)(
          Effect.acquireRelease(Effect.tryPromise({ try: open, catch: (e) => e }), (h) =>
            Effect.promise(() => h.close().catch(() => undefined)),
          ),
        ),
      )
    } catch (e) {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      throw e // Effect 4 rejects with the original error
    }
    const lease = `${info.role === 'primary' ? 'p' : 'r'}${this.#next++}`
    const record: LeaseRecord = {
      lease,
      handle,
      role: info.role,
      shardId: info.shardId,
      readerId: info.readerId,
      openedAt: info.now,
      ticket,
      seq: 0,
      epoch: 0,
      inflight: 0,
      lastUsedAt: info.now,
      faulted: false,
      identityPending: undefined,
    }
    this.#held.set(lease, { record, scope, releasing: undefined, drained: undefined })
    if (signal?.aborted) {
      await this.release(lease, { force: true })
      throw new Error('open abandoned: its actor stopped')
    }
    return record
  }

  /** Call when a request on `record` finishes: releases a draining handle once its last request is done. */
  finished(record: LeaseRecord): void {
    record.inflight--
    if (record.inflight <= 0) this.#held.get(record.lease)?.drained?.()
  }

  /**
   * Releases a lease: waits until no request runs on it (unless `force`), then closes its scope (and so the handle).
   * Idempotent; resolves when the handle is closed. Unknown leases resolve at once.
   */
  release(lease: Lease, options: { force?: boolean } = {}): Promise<void> {
    const held = this.#held.get(lease)
    if (held === undefined) return Promise.resolve()
    if (options.force) held.drained?.()
    held.releasing ??= (async () => {
      if (held.record.inflight > 0 && !options.force) {
        await new Promise<void>((resolve) => (held.drained = resolve))
      }
      await Effect.runPromise(Scope.close(held.scope, Exit.void))
      this.#held.delete(lease)
    })()
    return held.releasing
  }

  /**
   * Releases everything (forced: in-flight requests will fail), after the opens still running have settled (their
   * actors are stopped by then, so each releases its own handle), and resolves once every handle is closed; or
   * once `giveUp` resolves: an open that outlasts it is released when it completes (see acquire), and a close that
   * outlasts it goes on, neither awaited. Call it once the actors are stopped.
   */
  async releaseAll(giveUp: Promise<unknown> = new Promise(() => {})): Promise<void> {
    let gaveUp = false
    void giveUp.then(() => (gaveUp = true))
    while (this.#acquiring.size > 0 && !gaveUp) await Promise.race([Promise.all([...this.#acquiring]), giveUp])
    const closes = Promise.all([...this.#held.keys()].map((l) => this.release(l, { force: true })))
    await Promise.race([closes, giveUp])
  }
}
