/** Temporary directories for tests on real RocksDB, removed afterwards. */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'

/** Creates a fresh temporary directory. */
export const tempDir = (prefix = 'rockvisor-'): Promise<string> => mkdtemp(join(tmpdir(), prefix))

/** Removes a directory tree (ignores a missing one). */
export const removeDir = (dir: string): Promise<void> => rm(dir, { recursive: true, force: true })

/** Every path under `dir` (relative, sorted) with its size, for "nothing changed on disk" assertions. */
export const listTree = async (dir: string): Promise<string[]> => {
  const out: string[] = []
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const path = join(d, entry.name)
      if (entry.isDirectory()) {
        out.push(`${relative(dir, path)}/`)
        await walk(path)
      } else out.push(`${relative(dir, path)} ${(await stat(path)).size}`)
    }
  }
  await walk(dir)
  return out.sort()
}
