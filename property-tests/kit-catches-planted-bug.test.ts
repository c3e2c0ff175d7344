/**
 * Invariant: the kit's model-based commands (`rockvisor/testing`, `commands.indexModelProperty`) catch a supervisor
 * that breaks the restart-intensity rule. With a planted bug (test/fixtures/broken-shard-supervisor.ts: the shard
 * supervisor restarts a failed primary without the intensity check), under the tightest intensity (no restart
 * allowed), fast-check finds a counterexample, and it is an `intensity` violation; with the real machine, the same
 * property, configured the same way, passes and its runs do reach the limit (shards give up on their primary), so
 * the check had something to catch.
 *
 * The planted bug replaces the machine src/runtime.ts builds each shard's supervisor from: `vi.doMock` of
 * actors/shard-supervisor.js, then a fresh import of the kit (after `vi.resetModules`, since the test setup has
 * loaded the real modules already), so that only the indexes that fresh copy opens get the broken machine.
 */
import fc from 'fast-check'
import { afterEach, describe, expect, it, vi } from 'vitest'

import type { ModelRunConfig } from '../src/testing/commands.js'
import { overriding, rocksEngine, type Engine } from '../src/engine.js'
import { defaults } from '../src/index.js'
import { idKey } from '../src/keys.js'

type Kit = typeof import('../src/testing/index.js')

/** A fresh copy of the kit (and of everything it imports), with the planted bug or with the real machine. */
const loadKit = async (planted: boolean): Promise<Kit> => {
  vi.resetModules()
  if (planted) {
    vi.doMock('../actors/shard-supervisor.js', async (importOriginal) => {
      const real = await importOriginal<typeof import('../actors/shard-supervisor.js')>()
      const { withoutIntensityCheck } = await import('../test/fixtures/broken-shard-supervisor.js')
      return { ...real, shardSupervisorMachine: withoutIntensityCheck(real.shardSupervisorMachine) }
    })
  }
  return import('../src/testing/index.js')
}

afterEach(() => {
  vi.doUnmock('../actors/shard-supervisor.js')
  vi.resetModules()
})

/**
 * The tightest primary intensity (no restart within 10 s): the first failure of a primary exhausts it. Two
 * partitions (one per shard), faults four times as often as by default.
 */
const configOf = ({ commands }: Kit): ModelRunConfig => ({
  maxCommands: 30,
  partitions: [0, 1],
  faultWeight: 4,
  options: {
    ...commands.modelRunOptions,
    supervision: {
      ...commands.modelRunOptions.supervision,
      primary: { intensity: { maxRestarts: 0, withinMs: 10_000 }, backoff: { minMs: 10, maxMs: 200, factor: 2, jitter: 0.5 }, resetAfterMs: 1_000 },
    },
  },
})
const numRuns = 100

describe('the kit against a planted storage bug', () => {
  it("should find the by-id entries a write batch never stored, though the time view holds their metas", { timeout: 300_000 }, async () => {
    const kit = await loadKit(false)
    // Every write batch loses its by-msgId entry of msgId "c"; the other views keep the meta.
    const lossy: Engine = {
      open: async (path, options) => {
        const handle = await rocksEngine.open(path, options)
        const byIdOfC = (key: Uint8Array): boolean => key[0] === 0x01 && key.length === 6 && key[5] === 0x63
        return overriding(handle, { write: (ops) => handle.write(ops.filter((op) => !(op.type === 'put' && byIdOfC(op.key)))) })
      },
    }
    const result = await fc.check(kit.commands.indexModelProperty({ engine: lossy, maxCommands: 20, partitions: [0], readerIndex: false }), { numRuns: 20, seed: 7, endOnFailure: true })
    expect(result.failed).toBe(true)
    expect(result.errorInstance).toBeInstanceOf(kit.commands.ModelViolation)
    // (Whichever check meets it first: a read, a retention's count, or the reopened index's views.)
    expect(['answer', 'retention', 'lost-write']).toContain((result.errorInstance as InstanceType<Kit['commands']['ModelViolation']>).kind)
  })
})

describe('the kit against a planted loss at shutdown', () => {
  it("should find, by reopening the root, the by-id entries a primary's close lost, which no read of the run saw", { timeout: 300_000 }, async () => {
    const kit = await loadKit(false)
    // When a primary closes, the by-msgId entry of msgId "c" of partition 0 is lost (the other views keep the meta).
    // Reads of the run come before it, and the run does not close and reopen its writer: only the check after the
    // run, on a fresh index of the root, can see it.
    const losing: Engine = {
      open: async (path, options) => {
        const handle = await rocksEngine.open(path, options)
        if (options.readOnly) return handle
        return overriding(handle, {
          close: async () => {
            await handle.close()
            const again = await rocksEngine.open(path, { ...defaults.primaryRocksdb, readOnly: false })
            try {
              await again.write([{ type: 'del', key: idKey(0, 'c') }])
            } finally {
              await again.close()
            }
          },
        })
      },
    }
    const result = await fc.check(kit.commands.indexModelProperty({ engine: losing, maxCommands: 20, partitions: [0], readerIndex: false, reopen: false }), { numRuns: 30, seed: 7, endOnFailure: true })
    expect(result.failed).toBe(true)
    expect(result.errorInstance).toBeInstanceOf(kit.commands.ModelViolation)
    expect((result.errorInstance as InstanceType<Kit['commands']['ModelViolation']>).kind).toBe('lost-write')
    expect((result.errorInstance as Error).message).toMatch(/ by msgId .*c: none/)
  })
})

describe('the kit against a planted bug', () => {
  it('should find a counterexample when the shard supervisor restarts without the intensity check', { timeout: 300_000 }, async () => {
    const kit = await loadKit(true)
    const result = await fc.check(kit.commands.indexModelProperty(configOf(kit)), { numRuns, endOnFailure: true })
    expect(result.failed).toBe(true)
    expect(result.errorInstance).toBeInstanceOf(kit.commands.ModelViolation)
    expect((result.errorInstance as InstanceType<Kit['commands']['ModelViolation']>).kind).toBe('intensity')
  })

  it('should pass the same property against the real machine, whose runs reach the intensity limit', { timeout: 300_000 }, async () => {
    const kit = await loadKit(false)
    let exhausted = 0
    const result = await fc.check(kit.commands.indexModelProperty({ ...configOf(kit), onRun: (r) => void (exhausted += r.exhausted) }), { numRuns })
    // The violation first: the report after it (the scheduler's whole history) is long.
    const violation = result.errorInstance instanceof kit.commands.ModelViolation ? `${result.errorInstance.kind}: ${result.errorInstance.message}` : String(result.errorInstance)
    expect(result.failed, `${violation}\n${fc.defaultReportMessage(result) ?? ''}`).toBe(false)
    expect(exhausted).toBeGreaterThan(0)
  })
})
