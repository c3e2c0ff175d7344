/**
 * What the inspector shows, gathered from a live index: the actor tree (root supervisor -> shard supervisors ->
 * primary + readers) with each actor's state, from XState's inspection events (pass `hub.inspect` as openIndex's
 * `inspect` option); restarts, queues and view freshness from `index.stats()`; lifecycle events from
 * `index.subscribe()`. Listeners hear about changes as they happen (at most every `throttleMs`).
 */
import type { AnyActorRef, InspectionEvent } from 'xstate'
import type { Index, LifecycleEvent } from '../index.js'
import type { ShardStats } from '../runtime.js'

/** One actor of the tree, as the page draws it. */
export interface ActorNode {
  /** The actor's id: `root`, a shard id (`orders/3`), `primary` or `reader-N`. */
  readonly id: string
  /** A unique key in the tree (`root`, `root/orders/3`, `root/orders/3/reader-2`). */
  readonly key: string
  /** Its machine's id (`root`, `shard`, `primary`, `reader`). */
  readonly machine: string
  /** Its state value, flattened: `running`, `ready.serving`, `active.primary.up + active.pool.healthy`. */
  readonly state: string
  /** Every state node it is in, as paths of keys (`ready`, `ready.serving`). */
  readonly paths: readonly string[]
  /** `active`, `done` (final state reached) or `error`. */
  readonly status: string
  readonly children: readonly ActorNode[]
  /** Shard supervisors: the shard's statistics. */
  readonly shard?: ShardView
  /** Readers: the view they serve. */
  readonly view?: { readonly sequence: number; readonly lag: number; readonly ageMs: number }
}

/** A shard's numbers, for the page. */
export interface ShardView {
  readonly topic: string
  readonly shard: number
  /** `shard 3 of orders`. */
  readonly label: string
  readonly state: string
  readonly pool: string
  readonly restarts: { readonly primary: number; readonly readers: number }
  readonly queues: { readonly pendingWrites: number; readonly pendingReads: number; readonly inflight: number }
  readonly sequence: number
  /** The primary's flushes: ended, one running now, writes waiting for it (see `ShardStats.flushes`). */
  readonly flushes: { readonly done: number; readonly running: boolean; readonly writesWaiting: number }
  /** The msgId filters of the partitions written (see `ShardStats.msgIdFilters`). */
  readonly msgIdFilters: ShardStats['msgIdFilters']
  readonly integrity: { readonly tornViews: number; readonly corruptReads: number; readonly refreshFailures: number }
  readonly cause?: string
}

/** Everything the page shows at one moment. */
export interface InspectorState {
  readonly root: string
  readonly mode: 'writer' | 'reader'
  readonly shardsPerTopic: number
  /** Milliseconds since the epoch when this was taken. */
  readonly at: number
  readonly tree: ActorNode | undefined
  readonly totals: { readonly primaries: number; readonly readers: number; readonly handles: number }
  /** Transitions taken so far, by machine id. */
  readonly transitions: Readonly<Record<string, number>>
  /** A few words about what is running (`demo: ingesting`, `reader mode`). */
  readonly activity: string
}

/** A lifecycle event with its time and the shard's readable name. */
export interface LoggedEvent extends LifecycleEvent {
  readonly at: number
  readonly seq: number
  readonly label: string
}

/** A transition an actor took (from XState's microstep inspection events). */
export interface TakenTransition {
  readonly actor: string
  readonly machine: string
  readonly event: string
  readonly from: string
  readonly to: readonly string[]
}

export type HubMessage =
  | { readonly type: 'state'; readonly state: InspectorState }
  | { readonly type: 'lifecycle'; readonly event: LoggedEvent }
  | { readonly type: 'transitions'; readonly transitions: readonly TakenTransition[] }

/** `shard 3 of orders` for shard 3 of topic `orders`. */
export const shardLabel = (topic: string, shard: number): string => `shard ${shard} of ${topic}`

/** Every state node a state value is in, as dotted paths (`{ ready: 'serving' }` -> `ready`, `ready.serving`). */
export const statePaths = (value: unknown, prefix = ''): string[] => {
  if (typeof value === 'string') return [`${prefix}${value}`]
  if (typeof value !== 'object' || value === null) return []
  return Object.entries(value).flatMap(([key, inner]) => [`${prefix}${key}`, ...statePaths(inner, `${prefix}${key}.`)])
}

/** The leaves of a state value, joined: `ready.serving`, `active.primary.up + active.pool.healthy`. */
const stateText = (value: unknown): string => {
  const paths = statePaths(value)
  const leaves = paths.filter((p) => !paths.some((q) => q.startsWith(`${p}.`)))
  return leaves.join(' + ')
}

interface MachineSnapshot {
  readonly value: unknown
  readonly status: string
  readonly children: Record<string, AnyActorRef | undefined>
  readonly machine?: { readonly id: string }
}

export class InspectorHub {
  readonly #listeners = new Set<(message: HubMessage) => void>()
  readonly #log: LoggedEvent[] = []
  readonly #transitions: Record<string, number> = {}
  #pending: TakenTransition[] = []
  #rootRef: AnyActorRef | undefined
  #index: Index | undefined
  #unsubscribe: (() => void) | undefined
  #timer: ReturnType<typeof setTimeout> | undefined
  #heartbeat: ReturnType<typeof setInterval> | undefined
  #seq = 0
  #closed = false
  /** What is running, shown in the page's header. */
  activity = ''

  constructor(
    readonly options: { readonly throttleMs?: number; readonly heartbeatMs?: number; readonly logSize?: number } = {},
  ) {}

  /** The `inspect` option for openIndex: receives XState inspection events of every actor of the index. */
  readonly inspect = (event: InspectionEvent): void => {
    if (this.#closed) return
    if (event.type === '@xstate.actor' && event.actorRef.sessionId === event.rootId) this.#rootRef = event.actorRef as AnyActorRef
    if (event.type === '@xstate.microstep') {
      const snapshot = event.snapshot as unknown as MachineSnapshot
      const machine = snapshot.machine?.id ?? '?'
      for (const t of (event as { _transitions?: Array<{ eventType: string; source: { path: string[] }; target?: Array<{ path: string[] }> }> })._transitions ?? []) {
        this.#transitions[machine] = (this.#transitions[machine] ?? 0) + 1
        this.#pending.push({
          actor: (event.actorRef as AnyActorRef).id,
          machine,
          event: String(t.eventType),
          from: t.source.path.join('.'),
          to: (t.target ?? []).map((n) => n.path.join('.')),
        })
      }
    }
    if (event.type === '@xstate.snapshot' || event.type === '@xstate.microstep' || event.type === '@xstate.actor') this.changed()
  }

  /** Follows a live index: its stats and lifecycle events. Call once, after openIndex. */
  attach(index: Index): void {
    this.#index = index
    this.#unsubscribe = index.subscribe((e) => {
      const topicShard = index.stats().shards.find((s) => s.id === e.shard)
      const logged: LoggedEvent = { ...e, at: Date.now(), seq: ++this.#seq, label: topicShard ? shardLabel(topicShard.topic, topicShard.shard) : e.shard }
      this.#log.push(logged)
      if (this.#log.length > (this.options.logSize ?? 500)) this.#log.shift()
      this.#emit({ type: 'lifecycle', event: logged })
      this.changed()
    })
    // View ages grow without any event: a heartbeat keeps them current.
    this.#heartbeat = setInterval(() => this.changed(), this.options.heartbeatMs ?? 1000)
    this.#heartbeat.unref()
    this.changed()
  }

  /** The lifecycle events so far (the newest `logSize`). */
  get log(): readonly LoggedEvent[] {
    return this.#log
  }

  /** Listens to state changes, lifecycle events and transitions; returns the unsubscribe function. */
  listen(listener: (message: HubMessage) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Schedules a state message (coalescing changes within `throttleMs`). */
  changed(): void {
    if (this.#closed || this.#timer !== undefined) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      if (this.#closed) return
      if (this.#pending.length > 0) {
        this.#emit({ type: 'transitions', transitions: this.#pending })
        this.#pending = []
      }
      this.#emit({ type: 'state', state: this.state() })
    }, this.options.throttleMs ?? 100)
    this.#timer.unref()
  }

  /** The state of the index now. */
  state(): InspectorState {
    const index = this.#index
    const stats = index?.stats()
    const byShard = new Map((stats?.shards ?? []).map((s) => [s.id, s]))
    const node = (ref: AnyActorRef, key: string, depth: number): ActorNode | undefined => {
      const snap = ref.getSnapshot() as MachineSnapshot
      if (snap.machine === undefined) return undefined // an invoked promise (an open or a close), not a machine
      const children = depth < 2 ? Object.entries(snap.children ?? {}).flatMap(([id, child]) => (child === undefined ? [] : [node(child, `${key}/${id}`, depth + 1)].filter((n): n is ActorNode => n !== undefined))) : []
      const base = { id: ref.id, key, machine: snap.machine.id, state: stateText(snap.value), paths: statePaths(snap.value), status: snap.status, children }
      if (depth === 1) {
        const s = byShard.get(ref.id)
        if (s === undefined) return base
        const shard: ShardView = {
          topic: s.topic,
          shard: s.shard,
          label: shardLabel(s.topic, s.shard),
          state: s.state,
          pool: s.pool,
          restarts: s.restarts,
          queues: s.queues,
          sequence: Math.max(s.sequence, ...s.views.map((v) => v.sequence)),
          flushes: s.flushes,
          msgIdFilters: s.msgIdFilters,
          integrity: s.integrity,
          ...(s.cause === undefined ? {} : { cause: `${s.cause.reason}: ${s.cause.message}` }),
        }
        // Readers first by number, the primary first of all.
        const order = (n: ActorNode) => (n.id === 'primary' ? -1 : Number(n.id.replace(/^\D+/, '')) || 0)
        const withViews = children
          .map((c) => {
            const v = s.views.find((x) => x.reader === c.id)
            return v === undefined ? c : { ...c, view: { sequence: v.sequence, lag: Math.max(0, shard.sequence - v.sequence), ageMs: v.ageMs } }
          })
          .sort((a, b) => order(a) - order(b))
        return { ...base, children: withViews, shard }
      }
      return base
    }
    return {
      root: index?.root ?? '',
      mode: index?.mode ?? 'writer',
      shardsPerTopic: index?.shards ?? 0,
      at: Date.now(),
      tree: this.#rootRef === undefined ? undefined : node(this.#rootRef, 'root', 0),
      totals: stats?.totals ?? { primaries: 0, readers: 0, handles: 0 },
      transitions: { ...this.#transitions },
      activity: this.activity,
    }
  }

  /** Stops listening to the index and to timers. */
  close(): void {
    this.#closed = true
    this.#unsubscribe?.()
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat)
    this.#listeners.clear()
  }

  #emit(message: HubMessage): void {
    for (const listener of this.#listeners) {
      try {
        listener(message)
      } catch {
        // A listener's failure (a closed connection) must not reach the index.
      }
    }
  }
}
