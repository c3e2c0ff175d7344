/**
 * Time, injected. The runtime never reads the system clock or sets a timer except through a {@link Clock}, so tests
 * (and fast-check runs) drive every backoff, idle retirement and lifetime recycle with a {@link ManualClock}.
 * The same object is handed to XState as the actors' clock.
 */
import { InvalidInput } from './errors.js'

/** A source of time and timers. `setTimeout` returns a handle that `clearTimeout` accepts. */
export interface Clock {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

/** The real clock: `Date.now` and the global timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

/**
 * A clock that moves only when told to. `advance(ms)` fires, in time order (ties in the order they were set), every
 * timer due within `ms` (including timers those timers set), each with the clock at its due time, and settles the
 * microtask queue between timers so promise chains can react; a negative delay counts as none. Time never
 * goes back: `start` and `ms` must be finite and not negative (else InvalidInput), and of two advances that overlap,
 * the one that ends first never sets the clock below where the other one took it.
 */
export class ManualClock implements Clock {
  #now: number
  #next = 1
  readonly #timers = new Map<number, { at: number; fn: () => void }>()

  constructor(start = 0) {
    this.#now = checkTime('start', start)
  }

  now(): number {
    return this.#now
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn })
    return id
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number)
  }

  /** How many timers are pending. */
  get pending(): number {
    return this.#timers.size
  }

  /** Moves time forward by `ms`, firing due timers in order. */
  async advance(ms: number): Promise<void> {
    const until = this.#now + checkTime('ms', ms)
    for (;;) {
      let due: [number, { at: number; fn: () => void }] | undefined
      for (const entry of this.#timers) if (entry[1].at <= until && (due === undefined || entry[1].at < due[1].at)) due = entry
      if (due === undefined) break
      this.#timers.delete(due[0])
      this.#now = Math.max(this.#now, due[1].at)
      due[1].fn()
      await settle()
    }
    this.#now = Math.max(this.#now, until)
    await settle()
  }
}

/** `value` if it is a finite number, not negative; else InvalidInput naming `field`. */
const checkTime = (field: string, value: number): number => {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidInput({ field, message: `${field}: must be a finite number of milliseconds, not negative, got ${typeof value === 'number' ? String(value) : typeof value}` })
  }
  return value
}

/** Lets pending promise reactions (and I/O callbacks already queued) run. */
export const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
