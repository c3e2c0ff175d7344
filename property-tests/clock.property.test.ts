/**
 * ManualClock, the clock users hand to `openIndex` to drive time in their tests: timers fire in time order (ties in
 * the order they were set), each sees the clock at its own due time, timers beyond the advance stay pending, and the
 * clock ends where the advance took it. Its arguments are checked, and two advances that overlap never move it back.
 */
import { fc, test } from '@fast-check/vitest'
import { describe, expect, it } from 'vitest'
import { InvalidInput, ManualClock } from '../src/index.js'

describe('ManualClock', () => {
  test.prop([
    fc.nat({ max: 1_000_000 }),
    fc.array(fc.nat({ max: 500 }), { maxLength: 20 }),
    fc.array(fc.nat({ max: 200 }), { minLength: 1, maxLength: 5 }),
  ])('should fire the timers due within each advance in time order, each at its due time', async (start, delays, steps) => {
    const clock = new ManualClock(start)
    const fired: { timer: number; at: number }[] = []
    delays.forEach((ms, timer) => clock.setTimeout(() => fired.push({ timer, at: clock.now() }), ms))
    let now = start
    for (const ms of steps) {
      await clock.advance(ms)
      now += ms
      expect(clock.now()).toBe(now)
    }
    // The model: every timer due by the end, by due time, then in the order they were set.
    const due = delays
      .map((ms, timer) => ({ timer, at: start + ms }))
      .filter((t) => t.at <= now)
      .sort((a, b) => a.at - b.at || a.timer - b.timer)
    expect(fired).toEqual(due)
    expect(clock.pending).toBe(delays.length - due.length)
  })

  it('should fire a timer set by a timer within the same advance, and leave one beyond it pending', async () => {
    const clock = new ManualClock()
    const fired: string[] = []
    clock.setTimeout(() => {
      fired.push(`outer@${clock.now()}`)
      clock.setTimeout(() => fired.push(`inner@${clock.now()}`), 30)
      clock.setTimeout(() => fired.push(`late@${clock.now()}`), 80)
    }, 20)
    await clock.advance(60)
    expect(fired).toEqual(['outer@20', 'inner@50'])
    expect(clock.pending).toBe(1)
    await clock.advance(40)
    expect(fired).toEqual(['outer@20', 'inner@50', 'late@100'])
    expect(clock.pending).toBe(0)
  })

  it('should not fire a cleared timer', async () => {
    const clock = new ManualClock()
    let fired = 0
    const handle = clock.setTimeout(() => fired++, 10)
    clock.setTimeout(() => fired++, 10)
    clock.clearTimeout(handle)
    expect(clock.pending).toBe(1)
    await clock.advance(10)
    expect(fired).toBe(1)
  })

  it('should take a negative delay as none: due now, after the timers already due now', async () => {
    const clock = new ManualClock(100)
    const fired: string[] = []
    clock.setTimeout(() => fired.push(`none@${clock.now()}`), 0)
    clock.setTimeout(() => fired.push(`negative@${clock.now()}`), -50)
    await clock.advance(0)
    expect(fired).toEqual(['none@100', 'negative@100'])
  })

  it('should let the reactions of a timer run before the next timer fires', async () => {
    const clock = new ManualClock()
    const events: string[] = []
    clock.setTimeout(() => void Promise.resolve().then(() => events.push('reaction of the first')), 1)
    clock.setTimeout(() => events.push('second'), 2)
    await clock.advance(2)
    expect(events).toEqual(['reaction of the first', 'second'])
  })

  it('should refuse a start or a step that is negative, not finite or not a number, naming it, and change nothing', async () => {
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, '5' as unknown as number]) {
      expect(() => new ManualClock(bad)).toThrow(InvalidInput)
      const clock = new ManualClock(7)
      let fired = 0
      clock.setTimeout(() => fired++, 0)
      const error = await clock.advance(bad).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(error).toBeInstanceOf(InvalidInput)
      expect((error as InvalidInput).field).toBe('ms')
      expect(clock.now()).toBe(7)
      expect(fired).toBe(0)
      expect(clock.pending).toBe(1)
    }
    expect(() => new ManualClock(-1)).toThrow(/^start: must be a finite number of milliseconds, not negative, got -1$/)
  })

  it('should never move back while two advances overlap, the one ending first below where the other took it', async () => {
    const clock = new ManualClock()
    const fired: string[] = []
    for (const at of [10, 12, 20]) clock.setTimeout(() => fired.push(`${at}@${clock.now()}`), at)
    // The clock as seen at every turn of the event loop while the advances run.
    const seen: number[] = []
    let sampling = true
    const sample = (): void => {
      seen.push(clock.now())
      if (sampling) setImmediate(sample)
    }
    sample()
    // The first advance fires the timer at 10 and waits; the second (to 15) fires the one at 12; the first fires the
    // one at 20 while the second still runs, which then ends below 20.
    const first = clock.advance(100)
    const second = clock.advance(5)
    await Promise.all([first, second])
    sampling = false
    expect(fired).toEqual(['10@10', '12@12', '20@20'])
    expect(clock.now()).toBe(100)
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1]!)
    expect(seen).toContain(20)
  })
})
