/**
 * Supervision policy: the data shapes of a child spec and the two pieces of arithmetic every supervisor here uses,
 * as plain functions (no XState, no time source): the restart-intensity window and the backoff delay.
 *
 * The intensity rule, as in OTP: if more than `maxRestarts` restarts happen within `withinMs`, the supervisor stops
 * restarting that child and escalates (the shard goes `failed` for a primary, `degraded` for its readers).
 */

/** How many restarts are tolerated, and over which sliding window. */
export interface Intensity {
  /** Most restarts allowed inside the window (MaxR). */
  readonly maxRestarts: number
  /** The window, in ms (MaxT). */
  readonly withinMs: number
}

/** Exponential backoff with jitter between restarts. */
export interface Backoff {
  /** Delay before the first restart, ms. */
  readonly minMs: number
  /** Upper bound of every delay, ms. */
  readonly maxMs: number
  /** Growth per consecutive restart (>= 1). */
  readonly factor: number
  /** Fraction of the delay randomized, in [0, 1]: the delay is drawn from [d * (1 - jitter), d]. */
  readonly jitter: number
}

/** An OTP-style child spec: what a supervisor does when this kind of child exits. */
export interface ChildSpec {
  /** `permanent`: always restarted; `transient`: restarted only after a failure; `temporary`: never restarted. */
  readonly restart: 'permanent' | 'transient' | 'temporary'
  readonly intensity: Intensity
  readonly backoff: Backoff
  /** A child that stayed up this long (ms) has its backoff attempt counter reset to 0. */
  readonly resetAfterMs: number
}

/** The outcome of {@link addRestart}. */
export type RestartDecision =
  | { readonly allowed: true; readonly history: readonly number[] }
  | { readonly allowed: false; readonly history: readonly number[] }

/**
 * Records a restart at `now` in `history` (timestamps of earlier restarts) and says whether it is allowed: it is
 * unless, counting it, more than `maxRestarts` restarts fall in the window (now - withinMs, now]. Pure: the history
 * returned holds exactly the restarts inside the window, so it stays bounded by the restarts one window can hold.
 */
export const addRestart = (history: readonly number[], now: number, intensity: Intensity): RestartDecision => {
  const recent = history.filter((t) => t > now - intensity.withinMs && t <= now)
  const next = [...recent, now]
  return next.length > intensity.maxRestarts ? { allowed: false, history: next } : { allowed: true, history: next }
}

/**
 * The delay before restart number `attempt` (0 for the first restart after a stable period):
 * `min(maxMs, minMs * factor^attempt)`, then jittered down by up to `jitter` of itself using `random` in [0, 1).
 * Always in [0, maxMs], never above the un-jittered delay, and non-decreasing in `attempt` when jitter is 0.
 */
export const backoffDelay = (attempt: number, backoff: Backoff, random: number): number => {
  const base = Math.min(backoff.maxMs, backoff.minMs * Math.pow(backoff.factor, Math.max(0, attempt)))
  const r = Math.min(Math.max(random, 0), 1)
  return Math.max(0, Math.round(base * (1 - backoff.jitter * r)))
}

/** Whether a child that exited with `failed` (true) or normally (false) is to be restarted under `restart`. */
export const shouldRestart = (restart: ChildSpec['restart'], failed: boolean): boolean =>
  restart === 'permanent' || (restart === 'transient' && failed)

/**
 * Whether a child's failure is one that restarting cannot cure (a damaged directory, say): the error says so with
 * `fatal: true` (src/ decides which failures those are). A supervisor gives up on such a child at once, without
 * backoff or counting toward the intensity.
 */
export const isFatal = (error: unknown): boolean =>
  typeof error === 'object' && error !== null && (error as { fatal?: unknown }).fatal === true

/** What a supervisor needs injected to stay pure: the time now (ms) and a random number in [0, 1). */
export interface SupervisorEnv {
  readonly now: () => number
  readonly random: () => number
}
