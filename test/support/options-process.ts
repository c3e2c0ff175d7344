/**
 * For test/options.test.ts, in a process of its own so that a native crash shows as an exit code, not as a dead test
 * worker: for each options object of the JSON array `argv[3]`, opens an index on `<argv[2]>/<n>` with it, writes one
 * meta, reads it back and closes. Prints one JSON line per case: `{ ok: true }`, `{ tag, field, message }` for an
 * error, or `{ hang: true }` if the write did not settle within 20 s. Exits 0 when every case printed its line.
 */
import { join } from 'node:path'
import { openIndex, type IndexOptions } from '../../src/index.js'

const [dir, cases] = [process.argv[2]!, JSON.parse(process.argv[3]!) as Record<string, unknown>[]]
const meta = { msgId: 'm1', timestamp: 1, segmentId: 1, offset: 1, msgLen: 10 }

const attempt = async (options: Record<string, unknown>, n: number): Promise<unknown> => {
  const index = await openIndex({ ...options, root: join(dir, String(n)), shards: 1 } as IndexOptions)
  try {
    await index.batchPut('t', 1, [meta])
    if ((await index.getByMsgId('t', 1, 'm1'))?.msgId !== 'm1') throw new Error('the meta written was not read back')
    return { ok: true }
  } finally {
    await index.close()
  }
}

for (const [n, options] of cases.entries()) {
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise((resolve) => (timer = setTimeout(() => resolve({ hang: true }), 20_000)))
  const outcome = await Promise.race([
    attempt(options, n).catch((e: unknown) => {
      const { _tag, field, message } = e as { _tag?: string; field?: string; message?: string }
      return { tag: _tag ?? String(e), field, message }
    }),
    hang,
  ])
  clearTimeout(timer)
  console.log(JSON.stringify(outcome))
  if ((outcome as { hang?: boolean }).hang) process.exit(2)
}
