/**
 * Every mutated module (stryker.config.mjs) loads. A test file that imports a module which throws while loading
 * fails before any of its tests exists, and Stryker's vitest runner counts only failed tests: a mutant that breaks a
 * module's top level (an unknown text encoding, say) would "survive" although every suite importing the module
 * fails. Importing each module inside a test turns that failure into a failed test. Nothing here imports them
 * statically, so that this file always loads (under vitest.stryker.config.ts, whose setup file loads none of them; under
 * `npm test` the transition-coverage setup loads the library first, and a module that cannot load fails every file).
 */
import { describe, expect, it } from 'vitest'

const modules: Record<string, string[]> = {
  '../actors/index.js': ['primaryMachine', 'readerMachine', 'rootSupervisorMachine', 'shardSupervisorMachine', 'backoffDelay'],
  '../src/keys.js': ['decodeKey', 'epochKey', 'sequenceKey', 'View'],
  '../src/tokens.js': ['makeToken', 'parseToken'],
  '../src/store.js': ['putMetas', 'deleteBefore', 'retentionChunk'],
  '../src/shard.js': ['ShardRuntime', 'satisfies'],
  '../src/runtime.js': ['Runtime'],
}

describe('the mutated modules', () => {
  for (const [path, names] of Object.entries(modules)) {
    it(`should load ${path} with its exports`, async () => {
      const mod = (await import(path)) as Record<string, unknown>
      for (const name of names) expect(mod[name], name).toBeDefined()
    })
  }

  it('should decode a by-id key with the fatal UTF-8 decoder that src/keys.ts builds when it loads', async () => {
    const { decodeKey } = await import('../src/keys.js')
    expect(decodeKey(Uint8Array.of(1, 0, 0, 0, 1, 0xc3, 0xa9))).toEqual({ view: 'byId', partition: 1, msgId: 'é' })
  })
})
