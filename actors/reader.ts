/**
 * A reader: one read-only instance of a shard's directory. Its view is frozen when it opens (RocksDB replays the WAL
 * once), so it can `refresh`: open a new read-only handle and swap it in. Pure logic like the primary: the runtime
 * provides `openReader`, `refreshReader`, `closeHandle`, `publish`, `withdraw`. A reader never restarts itself; it
 * exits (`failed`, `retired` or `closed`) and its shard supervisor decides what comes next.
 *
 * ```
 * waiting --after delay--> opening --ok--> ready.serving <--REFRESH / ok (swap)--> ready.refreshing
 *                                          ready.refreshing --error--> ready.cooling --after refresh backoff--> ready.serving
 * ready --FAULT--> failed --> crashed (final)      ready --RETIRE/CLOSE--> retiring --> closed (final)
 * ```
 *
 * A failed refresh is not a failed reader: the old view is still whole and keeps serving while the reader cools down
 * (no refresh is asked of it for the refresh backoff: `backoff` of its child spec, growing with consecutive
 * failures, without jitter), and it does not count toward the restart intensity.
 */
import { assign, fromPromise, sendParent, setup } from 'xstate'
import { backoffDelay, type Backoff } from './policy.js'
import type { Lease } from './primary.js'

/** What a supervisor gives a new reader. */
export interface ReaderInput {
  readonly shardId: string
  readonly readerId: string
  /** Backoff before opening, ms (0: open at once). */
  readonly delayMs: number
  /** Backoff after a failed refresh (attempt n waits `backoffDelay(n, refreshBackoff, 0)`). */
  readonly refreshBackoff: Backoff
}

/** How a reader ended. */
export interface ReaderOutput {
  readonly readerId: string
  readonly outcome: 'retired' | 'closed' | 'failed'
  readonly error?: unknown
}

/**
 * Events a reader accepts. `FAULT` comes from the data plane (a read on its handle failed); `REFRESH` when a read
 * needs a newer view; `RETIRE` when its supervisor shrinks the pool or recycles it; `CLOSE` on shutdown.
 */
export type ReaderEvent = { type: 'FAULT'; error: unknown; lease?: Lease } | { type: 'REFRESH' } | { type: 'RETIRE' } | { type: 'CLOSE' }

/** What a reader tells its parent, beyond its exit. */
export type ReaderReport = { type: 'READER.READY'; readerId: string }

type ReaderContext = {
  shardId: string
  readerId: string
  delayMs: number
  refreshBackoff: Backoff
  /** Refreshes that failed in a row (0 after a successful one). */
  refreshFailures: number
  lease: Lease | undefined
  error: unknown
  outcome: ReaderOutput['outcome']
}

export const readerMachine = setup({
  types: {
    context: {} as ReaderContext,
    input: {} as ReaderInput,
    events: {} as ReaderEvent,
    output: {} as ReaderOutput,
  },
  actors: {
    /** Opens the directory read-only (every table file up front); resolves with a lease. */
    openReader: fromPromise<Lease, { shardId: string; readerId: string }>(async () => {
      throw new Error('openReader is provided by the runtime')
    }),
    /** Opens a newer view of the directory of `lease` and resolves its lease (the `swap` action then swaps it in). */
    refreshReader: fromPromise<Lease, { shardId: string; readerId: string; lease: Lease }>(async () => {
      throw new Error('refreshReader is provided by the runtime')
    }),
    /** Releases a lease once the reads in flight on it finish, or at once with `force`. Idempotent. */
    closeHandle: fromPromise<void, { lease: Lease; force?: boolean }>(async () => {
      throw new Error('closeHandle is provided by the runtime')
    }),
  },
  actions: {
    publish: (_, _params: { shardId: string; readerId: string; lease: Lease }) => {},
    withdraw: (_, _params: { shardId: string; readerId: string; lease: Lease }) => {},
    /** Publishes the refreshed lease `to` in place of `from`, and releases `from` once its reads drain. */
    swap: (_, _params: { shardId: string; readerId: string; from: Lease; to: Lease }) => {},
    /** A refresh failed: the data plane stops asking this reader to refresh (its old view keeps serving). */
    refreshFailed: (_, _params: { shardId: string; readerId: string; error: unknown }) => {},
    /** The refresh backoff is over: the data plane may ask this reader to refresh again. */
    refreshAllowed: (_, _params: { shardId: string; readerId: string }) => {},
  },
  delays: {
    backoff: ({ context }) => context.delayMs,
    refreshBackoff: ({ context }) => backoffDelay(context.refreshFailures - 1, context.refreshBackoff, 0),
  },
  guards: {
    noDelay: ({ context }) => context.delayMs <= 0,
    currentLease: ({ context, event }) => event.type !== 'FAULT' || event.lease === undefined || event.lease === context.lease,
  },
}).createMachine({
  id: 'reader',
  context: ({ input }) => ({
    shardId: input.shardId,
    readerId: input.readerId,
    delayMs: input.delayMs,
    refreshBackoff: input.refreshBackoff,
    refreshFailures: 0,
    lease: undefined,
    error: undefined,
    outcome: 'closed',
  }),
  initial: 'waiting',
  output: ({ context }) =>
    context.outcome === 'failed'
      ? { readerId: context.readerId, outcome: 'failed', error: context.error }
      : { readerId: context.readerId, outcome: context.outcome },
  states: {
    waiting: {
      always: { guard: 'noDelay', target: 'opening' },
      after: { backoff: 'opening' },
      on: { CLOSE: 'closed', RETIRE: { target: 'closed', actions: assign({ outcome: 'retired' }) } },
    },
    opening: {
      invoke: {
        src: 'openReader',
        input: ({ context }) => ({ shardId: context.shardId, readerId: context.readerId }),
        onDone: { target: 'ready', actions: assign({ lease: ({ event }) => event.output }) },
        onError: { target: 'crashed', actions: assign({ error: ({ event }) => event.error, outcome: 'failed' }) },
      },
      on: { CLOSE: 'closed', RETIRE: { target: 'closed', actions: assign({ outcome: 'retired' }) } },
    },
    ready: {
      entry: [
        { type: 'publish', params: ({ context }) => ({ shardId: context.shardId, readerId: context.readerId, lease: context.lease! }) },
        sendParent(({ context }) => ({ type: 'READER.READY', readerId: context.readerId }) satisfies ReaderReport),
      ],
      exit: { type: 'withdraw', params: ({ context }) => ({ shardId: context.shardId, readerId: context.readerId, lease: context.lease! }) },
      initial: 'serving',
      states: {
        serving: {
          on: { REFRESH: 'refreshing' },
        },
        refreshing: {
          // The old view keeps serving until the new one is swapped in.
          invoke: {
            src: 'refreshReader',
            input: ({ context }) => ({ shardId: context.shardId, readerId: context.readerId, lease: context.lease! }),
            onDone: {
              target: 'serving',
              actions: [
                { type: 'swap', params: ({ context, event }) => ({ shardId: context.shardId, readerId: context.readerId, from: context.lease!, to: event.output }) },
                assign({ lease: ({ event }) => event.output, refreshFailures: 0 }),
              ],
            },
            // The old view is whole and keeps serving: a failed refresh only cools the reader down.
            onError: {
              target: 'cooling',
              actions: [
                assign({ refreshFailures: ({ context }) => context.refreshFailures + 1 }),
                { type: 'refreshFailed', params: ({ context, event }) => ({ shardId: context.shardId, readerId: context.readerId, error: event.error }) },
              ],
            },
          },
        },
        cooling: {
          after: { refreshBackoff: 'serving' },
          exit: { type: 'refreshAllowed', params: ({ context }) => ({ shardId: context.shardId, readerId: context.readerId }) },
        },
      },
      on: {
        // A fault on an older view (swapped out by a refresh, still draining) is stale: the current view is fine.
        FAULT: { guard: 'currentLease', target: 'failed', actions: assign({ error: ({ event }) => event.error, outcome: 'failed' }) },
        RETIRE: { target: 'retiring', actions: assign({ outcome: 'retired' }) },
        CLOSE: 'retiring',
      },
    },
    failed: {
      // A failed handle is released at once (force): requests still on it fail and are retried elsewhere, and a
      // stream left open on it cannot keep the directory (and the restart) waiting.
      invoke: {
        src: 'closeHandle',
        input: ({ context }) => ({ lease: context.lease!, force: true }),
        onDone: 'crashed',
        onError: 'crashed',
      },
    },
    retiring: {
      invoke: {
        src: 'closeHandle',
        input: ({ context }) => ({ lease: context.lease! }),
        onDone: 'closed',
        onError: 'closed',
      },
    },
    crashed: { type: 'final' },
    closed: { type: 'final' },
  },
})
