/**
 * Where a process's main thread spends its time, by kind of work: a sampling CPU profile (V8's, through the
 * inspector) of a window, its self time summed per category (see {@link Category}). Used by `bench/placement.ts
 * --profile` on the mixed workload.
 */
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { join } from 'node:path'

/**
 * The kinds of main-thread work a profile is cut into:
 * - `binding native`: native code of the rocksdb-native binding called from the main thread (what a read or write
 *   batch does before it leaves for libuv's pool: the binding reads each key's properties through N-API);
 * - `binding JS`: the binding's own JavaScript (its batches, iterators and their streams);
 * - `rockvisor`: this package's code (src/, actors/);
 * - `other packages`: other dependencies (xstate, effect, ...);
 * - `node`: Node's own JavaScript and native functions not called by the binding;
 * - `bench`: the benchmark's own loops;
 * - `garbage collection`, `idle` (waiting for I/O), `V8 other` (compilation and the rest V8 reports as "program").
 */
export type Category = 'binding native' | 'binding JS' | 'rockvisor' | 'other packages' | 'node' | 'bench' | 'garbage collection' | 'idle' | 'V8 other'

export const categories: readonly Category[] = ['binding native', 'binding JS', 'rockvisor', 'other packages', 'node', 'bench', 'garbage collection', 'idle', 'V8 other']

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string }
  readonly children?: readonly number[]
}

interface Profile {
  readonly nodes: readonly ProfileNode[]
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

/** The category of a frame with a source (a JavaScript function). */
const ofScript = (url: string): Category => {
  if (url.includes('/node_modules/rocksdb-native/')) return 'binding JS'
  if (url.includes('/node_modules/')) return 'other packages'
  if (url.startsWith('node:')) return 'node'
  if (url.includes('/bench/')) return 'bench'
  return 'rockvisor'
}

/**
 * Each category's share of the profile's time (fractions summing to 1). Samples taken while the inspector itself ran
 * (stopping the profile, under `node:inspector`'s `post`) are left out.
 */
export const breakdown = (profile: Profile): Record<Category, number> => {
  const parent = new Map<number, ProfileNode>()
  const byId = new Map<number, ProfileNode>()
  for (const n of profile.nodes) {
    byId.set(n.id, n)
    for (const c of n.children ?? []) parent.set(c, n)
  }
  const inspector = (node: ProfileNode): boolean => {
    for (let p: ProfileNode | undefined = node; p !== undefined; p = parent.get(p.id)) if (p.callFrame.url === 'node:inspector') return true
    return false
  }
  const category = (node: ProfileNode): Category | undefined => {
    if (inspector(node)) return undefined
    const { functionName, url } = node.callFrame
    if (url !== '') return ofScript(url)
    if (functionName === '(idle)') return 'idle'
    if (functionName === '(garbage collector)') return 'garbage collection'
    if (functionName === '(program)' || functionName === '(root)') return 'V8 other'
    // A native function: the binding's when the nearest JavaScript caller is the binding's.
    for (let p = parent.get(node.id); p !== undefined; p = parent.get(p.id)) {
      if (p.callFrame.url !== '') return p.callFrame.url.includes('/node_modules/rocksdb-native/') ? 'binding native' : 'node'
    }
    return 'node'
  }
  const totals = Object.fromEntries(categories.map((c) => [c, 0])) as Record<Category, number>
  let all = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!)
    const dt = profile.timeDeltas[i] ?? 0
    const kind = node === undefined ? undefined : category(node)
    if (kind === undefined) continue
    totals[kind] += dt
    all += dt
  }
  for (const c of categories) totals[c] = all === 0 ? 0 : totals[c] / all
  return totals
}

/** Starts sampling this thread (every `intervalUs`); the returned function stops and returns the breakdown. */
export const startProfile = async (intervalUs = 500): Promise<() => Promise<Record<Category, number>>> => {
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: intervalUs })
  await session.post('Profiler.start')
  return async () => {
    try {
      const { profile } = await session.post('Profiler.stop')
      // ROCKVISOR_PROFILE_DIR: also keep the profile itself (open it in Chrome's DevTools, Performance tab).
      const dir = process.env.ROCKVISOR_PROFILE_DIR
      if (dir !== undefined) await writeFile(join(dir, `main-thread-${process.pid}.cpuprofile`), JSON.stringify(profile))
      return breakdown(profile as unknown as Profile)
    } finally {
      session.disconnect()
    }
  }
}
