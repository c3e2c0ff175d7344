/** Real engine calls whose completion a fast-check scheduler releases (for the property tests' scheduled engines). */
import type { Scheduler } from 'fast-check'

/**
 * Lets the scheduler `s` decide when the caller sees the outcome of `call`, a real engine call already running.
 *
 * `s.schedule(call)` alone leaves a rejection of `call` unhandled: fast-check subscribes to a scheduled promise only
 * when it releases it, and a real call may reject long before that (a write on a handle that was closed meanwhile
 * rejects at once with "RocksDB session is closed") or never be released at all (the run ended first). Node reports
 * such a rejection as soon as the microtask queue drains, and vitest then fails the whole run. So the outcome is
 * taken here, as a value, the moment the call settles, and becomes a rejection again only for the caller, once the
 * scheduler releases it. An outcome never released is dropped together with the caller still waiting for it.
 */
export const released = <T>(s: Scheduler, call: Promise<T>, label: string): Promise<T> =>
  s
    .schedule(
      call.then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      ),
      label,
    )
    .then((outcome) => (outcome.ok ? outcome.value : Promise.reject(outcome.error)))
