/**
 * Lifecycle events the supervisors announce (through their provided `notify` action). The runtime turns them into
 * `index.events`. They are about the control plane only: never one per request.
 */

/** What happened. `failed` on a child is one failure; on the shard (`actor: 'shard'`) it means the primary's restart
 * intensity is exhausted (or its directory is damaged). `degraded` means the readers' intensity is exhausted (reads go
 * to the primary). `torn-view`: a reader's new view missed data and was discarded before serving (see src/views.ts).
 * `corruption`: a read met a damaged block (that read failed; the handle keeps serving). `refresh-failed`: a
 * reader's refresh could not open a newer view; the old view keeps serving. */
export type LifecycleKind =
  | 'created'
  | 'opened'
  | 'failed'
  | 'restarted'
  | 'degraded'
  | 'recovered'
  | 'retired'
  | 'closed'
  | 'torn-view'
  | 'corruption'
  | 'refresh-failed'

/** One lifecycle event: which shard, which actor (`shard`, `primary` or a reader id such as `reader-3`). */
export interface LifecycleEvent {
  readonly type: LifecycleKind
  readonly shard: string
  readonly actor: string
  /** Restart delay (restarted), error message (failed), or reason (retired). */
  readonly detail?: string
}
