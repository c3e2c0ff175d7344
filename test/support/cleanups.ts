/**
 * Things a test opens (harnesses, scratch directories, indexes) closed or removed after it, last opened first, even
 * when it fails. Call {@link cleanupAfterEach} once at the top of a test file.
 */
import { afterEach } from 'vitest'
import { openHarness, type Harness } from './harness.js'
import { removeDir, tempDir } from './tmp.js'

export interface Cleanups {
  /** Runs `fn` after the current test. */
  add(fn: () => Promise<void>): void
  /** A harness disposed of after the current test. */
  harness(...args: Parameters<typeof openHarness>): Promise<Harness>
  /** A temporary directory removed after the current test. */
  scratch(): Promise<string>
}

export const cleanupAfterEach = (before: () => void = () => {}): Cleanups => {
  const list: (() => Promise<void>)[] = []
  afterEach(async () => {
    before()
    for (const c of list.reverse()) await c()
    list.length = 0
  })
  return {
    add: (fn) => void list.push(fn),
    harness: async (...args) => {
      const h = await openHarness(...args)
      list.push(() => h.dispose())
      return h
    },
    scratch: async () => {
      const dir = await tempDir()
      list.push(() => removeDir(dir))
      return dir
    },
  }
}
