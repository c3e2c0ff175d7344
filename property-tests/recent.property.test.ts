/**
 * Invariant: a view of the shard at any sequence `v >= floor`, merged with the memory of recent writes
 * (src/recent.ts), answers every point key exactly as the newest state does — whatever batches (puts, deletions,
 * range deletions, keys of other views), prunes and byte bounds came before. The model is the plain history of
 * batches: the state at a sequence is the replay of the batches up to it. And such a view holds a time window of a
 * partition as the newest state does unless a write after it touched the window, which the memory tells exactly.
 */
import { fc, test } from '@fast-check/vitest'
import { expect } from 'vitest'
import type { WriteOp } from '../src/engine.js'
import { decodeKey, timeKey, timeKeyMax, View } from '../src/keys.js'
import { hashOf, RecentWrites } from '../src/recent.js'

const keys = [
  Uint8Array.of(View.byId, 0, 0, 0, 1, 0x61),
  Uint8Array.of(View.byId, 0, 0, 0, 1, 0x62),
  Uint8Array.of(View.bySegmentOffset, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7),
  Uint8Array.of(View.bySegmentOffset, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7),
  // Two keys of the same hash (found by search), so that keys sharing a map slot are told apart.
  Uint8Array.of(View.byId, 0, 0, 0, 1, ...Buffer.from('k61762')),
  Uint8Array.of(View.byId, 0, 0, 0, 1, ...Buffer.from('k240040')),
]
test('two of the keys share a hash (else the search for a colliding pair must be redone)', () => {
  expect(hashOf(keys[4]!)).toBe(hashOf(keys[5]!))
})
const otherKey = Uint8Array.of(View.byTime, 0, 0, 0, 1, 9)

type Step =
  | { kind: 'batch'; ops: readonly WriteOp[] }
  | { kind: 'prune'; back: number }
  | { kind: 'query'; back: number }

const opArb: fc.Arbitrary<WriteOp> = fc.oneof(
  fc.record({ type: fc.constant('put' as const), key: fc.constantFrom(...keys, otherKey), value: fc.uint8Array({ minLength: 0, maxLength: 8 }) }),
  fc.record({ type: fc.constant('del' as const), key: fc.constantFrom(...keys, otherKey) }),
)
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.array(opArb, { minLength: 1, maxLength: 5 }).map((ops) => ({ kind: 'batch' as const, ops })) },
  { weight: 1, arbitrary: fc.constant<Step>({ kind: 'batch', ops: [{ type: 'delRange', start: keys[0]!, end: keys[1]! }] }) },
  { weight: 2, arbitrary: fc.nat({ max: 4 }).map((back) => ({ kind: 'prune' as const, back })) },
  { weight: 4, arbitrary: fc.nat({ max: 5 }).map((back) => ({ kind: 'query' as const, back })) },
)

const hex = (k: Uint8Array): string => Buffer.from(k).toString('hex')

/** The point keys' state after the batches with sequence <= seq (applied to a copy of `from`, if given). */
const stateAt = (history: readonly { seq: number; ops: readonly WriteOp[] }[], seq: number, from?: ReadonlyMap<string, string>): Map<string, string> => {
  const state = new Map<string, string>(from)
  for (const b of history) {
    if (b.seq > seq) break
    for (const op of b.ops) {
      if (op.type === 'put') state.set(hex(op.key), hex(op.value))
      else if (op.type === 'del') state.delete(hex(op.key))
      else for (const k of [...state.keys()]) if (k >= hex(op.start) && k < hex(op.end)) state.delete(k)
    }
  }
  return state
}

// The memory counts its keys per slot of their hash and answers a key whose slot counts none without its map: with
// one or two slots every key shares a slot with others, and the counts must follow every key added and dropped.
test.prop([fc.array(stepArb, { maxLength: 60 }), fc.constantFrom(1, 200, 1_000_000), fc.nat({ max: 3 }), fc.constantFrom(1, 2, 1 << 17)], { numRuns: 1_000 })(
  'a view at or above the floor merged with the recent writes answers as the newest state',
  (steps, maxBytes, start, slots) => {
    const recent = new RecentWrites(start, maxBytes, slots)
    const history: { seq: number; ops: readonly WriteOp[] }[] = []
    let seq = start
    for (const step of steps) {
      if (step.kind === 'batch') {
        history.push({ seq: ++seq, ops: step.ops })
        recent.record(step.ops, seq)
      } else if (step.kind === 'prune') {
        recent.prune(Math.max(start, seq - step.back))
      } else {
        const view = seq - step.back
        if (view < recent.floor) continue
        const old = stateAt(history, view)
        const now = stateAt(history, seq)
        for (const k of keys) {
          const newer = recent.newer(k, view)
          const merged = newer === undefined ? old.get(hex(k)) : newer.value === undefined ? undefined : hex(newer.value)
          expect(merged, `key ${hex(k)} at view ${view} of ${seq}`).toBe(now.get(hex(k)))
        }
      }
    }
    // The byte bound holds after every batch (a batch larger than the bound is dropped at once).
    expect(recent.bytes).toBeLessThanOrEqual(maxBytes)
  },
)

// Past 1,024 pruned batches the memory compacts its list of batches, some indexed into its map and some not yet
// (a batch is indexed when a read first asks): a long history, queried and pruned at varying rhythms, still answers
// every key exactly.
test.prop([fc.integer({ min: 1, max: 97 }), fc.integer({ min: 1, max: 13 }), fc.integer({ min: 0, max: 40 })], { numRuns: 20 })(
  'a long history, compacted while partly indexed, answers as the newest state',
  (queryEvery, pruneEvery, lag) => {
    const recent = new RecentWrites(0, 1_000_000)
    // The point keys' state after each sequence (four keys: a copy per sequence is cheap).
    const states: Map<string, string>[] = [new Map()]
    let queries = 0
    for (let seq = 1; seq <= 3_000; seq++) {
      const ops: WriteOp[] = [{ type: 'put', key: keys[seq % keys.length]!, value: Uint8Array.of(seq & 0xff, seq >> 8) }]
      if (seq % 5 === 0) ops.push({ type: 'del', key: keys[(seq + 1) % keys.length]! })
      states.push(stateAt([{ seq, ops }], seq, states[seq - 1]))
      recent.record(ops, seq)
      if (seq % pruneEvery === 0) recent.prune(Math.max(0, seq - lag))
      if (seq % queryEvery === 0) {
        const view = Math.max(recent.floor, seq - lag)
        const old = states[view]!
        const now = states[seq]!
        for (const k of keys) {
          const newer = recent.newer(k, view)
          const merged = newer === undefined ? old.get(hex(k)) : newer.value === undefined ? undefined : hex(newer.value)
          expect(merged, `key ${hex(k)} at view ${view} of ${seq}`).toBe(now.get(hex(k)))
        }
        queries++
      }
    }
    expect(queries).toBeGreaterThan(0)
  },
)

// Range reads and scans: a view at or above the floor is read alone for a time window when no write held after it
// touched the window (touchesTimes). Checked against the history: "untouched" must mean that the view's window
// equals the newest one (a later batch wrote or deleted no by-time key of that partition in the window), and
// "touched" must come only from a later batch whose span of timestamps in that partition meets the window (so stale
// views do serve), whatever came before: prunes, byte bounds, range deletions, point keys, and a key of the by-time
// view too short to be read (which touches every window).
const timeKeys = [1, 2].flatMap((p) => [0, 3, 5].flatMap((ts) => [0, 1].map((off) => timeKey(p, ts, 0, off))))
type WindowStep = Step | { kind: 'window'; back: number; partition: number; from: number; to: number }
const timeOpArb: fc.Arbitrary<WriteOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ type: fc.constant('put' as const), key: fc.constantFrom(...timeKeys), value: fc.uint8Array({ maxLength: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ type: fc.constant('del' as const), key: fc.constantFrom(...timeKeys) }) },
  { weight: 2, arbitrary: opArb },
)
const windowStepArb: fc.Arbitrary<WindowStep> = fc.oneof(
  { weight: 5, arbitrary: fc.array(timeOpArb, { minLength: 1, maxLength: 4 }).map((ops) => ({ kind: 'batch' as const, ops })) },
  { weight: 1, arbitrary: fc.constant<Step>({ kind: 'batch', ops: [{ type: 'delRange', start: keys[0]!, end: keys[1]! }] }) },
  { weight: 2, arbitrary: fc.nat({ max: 4 }).map((back) => ({ kind: 'prune' as const, back })) },
  {
    weight: 5,
    arbitrary: fc
      .record({ back: fc.nat({ max: 5 }), partition: fc.constantFrom(1, 2, 3), a: fc.integer({ min: 0, max: 6 }), b: fc.integer({ min: 0, max: 6 }) })
      .map(({ back, partition, a, b }) => ({ kind: 'window' as const, back, partition, from: Math.min(a, b), to: Math.max(a, b) })),
  },
)
/** The by-time entries of `partition` with timestamps in [from, to] in `state` (hex key -> hex value), as text. */
const windowOf = (state: ReadonlyMap<string, string>, partition: number, from: number, to: number): string =>
  JSON.stringify([...state].filter(([k]) => k >= hex(timeKey(partition, from)) && k <= hex(timeKeyMax(partition, to))).sort())

test.prop([fc.array(windowStepArb, { maxLength: 60 }), fc.constantFrom(1, 300, 1_000_000), fc.constantFrom(0, 2, 16_384)], { numRuns: 1_000 })(
  'a view at or above the floor of the spans holds a time window as the newest state unless a write after it touched the window',
  (steps, maxBytes, maxSpans) => {
    const recent = new RecentWrites(0, maxBytes, undefined, maxSpans)
    const history: { seq: number; ops: readonly WriteOp[] }[] = []
    let seq = 0
    for (const step of steps) {
      if (step.kind === 'batch') {
        history.push({ seq: ++seq, ops: step.ops })
        recent.record(step.ops, seq)
      } else if (step.kind === 'prune') {
        recent.prune(Math.max(0, seq - step.back))
      } else if (step.kind === 'window') {
        const view = seq - step.back
        // The spans outlive the keys: their floor is never above the keys' floor.
        expect(recent.timesFloor).toBeLessThanOrEqual(recent.floor)
        if (view < recent.timesFloor) continue
        const { partition, from, to } = step
        // Per batch and partition the memory keeps the span of the timestamps written (not each one): a batch touches
        // the window when its span there meets it.
        const touched = history.some((b) => {
          if (b.seq <= view) return false
          const ops = b.ops.filter((op) => op.type !== 'delRange' && op.key[0] === View.byTime)
          if (ops.some((op) => op.type !== 'delRange' && op.key.length < 13)) return true
          const ts = ops.map((op) => (op.type === 'delRange' ? undefined : decodeTime(op.key))).filter((t) => t?.partition === partition).map((t) => t!.ts)
          return ts.length > 0 && Math.min(...ts) <= to && Math.max(...ts) >= from
        })
        const label = `window ${partition} [${from}, ${to}] at view ${view} of ${seq}`
        expect(recent.touchesTimes(partition, from, to, view), label).toBe(touched)
        if (!touched) expect(windowOf(stateAt(history, view), partition, from, to), label).toBe(windowOf(stateAt(history, seq), partition, from, to))
      }
    }
  },
)
const decodeTime = (key: Uint8Array): { partition: number; ts: number } => {
  const k = decodeKey(key)
  if (k.view !== 'byTime') throw new Error(`not a by-time key: ${hex(key)}`)
  return { partition: k.partition, ts: k.timestamp }
}

test('a slot that counted 255 keys stays counted: more keys never wrap its count to none', () => {
  // One slot: every key counts there. A byte's count would wrap to 0 at the 256th key and hide them all.
  const recent = new RecentWrites(0, 1_000_000, 1)
  const key = (i: number) => Uint8Array.of(View.byId, 0, 0, 0, 1, i)
  for (let i = 0; i < 256; i++) recent.record([{ type: 'put', key: key(i), value: Uint8Array.of(i) }], i + 1)
  for (let i = 0; i < 256; i++) expect(recent.newer(key(i), 0)?.value, `key ${i}`).toEqual(Uint8Array.of(i))
  // Dropping keys leaves a stuck count stuck: after 255 of them, one would bring a count of 255 to 0 and hide the last.
  recent.prune(255)
  for (let i = 0; i < 256; i++) expect(recent.newer(key(i), 255)?.value, `key ${i}`).toEqual(i < 255 ? undefined : Uint8Array.of(i))
})

test('the slots of the counts are a power of two', () => {
  expect(() => new RecentWrites(0, 1_000, 3)).toThrow(RangeError)
  expect(new RecentWrites(0, 1_000, 4).slots).toBe(4)
})

test('a reset never lowers the floor: a view below it would be merged with a memory that lacks what came between', () => {
  const recent = new RecentWrites(0, 1_000_000)
  recent.record([{ type: 'put', key: keys[0]!, value: Uint8Array.of(1) }], 1)
  recent.prune(5)
  expect(recent.floor).toBe(5)
  // The reader-mode tail starts its memory over at the first batch it reads, which may come before the floor.
  recent.reset(2)
  expect([recent.floor, recent.timesFloor]).toEqual([5, 5])
  recent.reset(7)
  expect([recent.floor, recent.timesFloor]).toEqual([7, 7])
})

test('the spans of dropped batches are bounded: past the bound the oldest go, raising their floor', () => {
  // One byte: every batch is dropped for bytes at once, its span kept; at most 2 spans.
  const recent = new RecentWrites(0, 1, undefined, 2)
  const put = (ts: number) => [{ type: 'put' as const, key: timeKey(1, ts), value: Uint8Array.of(ts) }]
  for (let seq = 1; seq <= 5; seq++) recent.record(put(seq), seq)
  expect(recent.floor).toBe(5)
  // Batches 4 and 5 keep their spans: a view at 3 is told about them, one at 2 cannot be asked.
  expect(recent.timesFloor).toBe(3)
  expect(recent.touchesTimes(1, 4, 4, 3)).toBe(true)
  expect(recent.touchesTimes(1, 3, 3, 3)).toBe(false)
  // A prune past them drops them and raises their floor too.
  recent.prune(4)
  expect(recent.timesFloor).toBe(4)
  expect(recent.touchesTimes(1, 5, 5, 4)).toBe(true)
})
