/**
 * Write tokens: proof of an acknowledged write that any reader, in this process or another, can wait for. A token
 * names a shard and the sequence number its batch stored (in the same atomic write batch as the data), so a reader
 * knows exactly whether its view reflects it. Serialized as `<shard id>@<sequence>`, e.g. `orders/3@1042`.
 */
import { InvalidInput } from './errors.js'

/** A write token, as returned by `batchPut` and `deleteBefore`: a short string, safe to pass between processes. */
export type WriteToken = string

/** The token of `sequence` in `shard`. */
export const makeToken = (shard: string, sequence: number): WriteToken => `${shard}@${sequence}`

/** Reads a token; throws InvalidInput if it is not one, or (when `shard` is given) if it belongs to another shard. */
export const parseToken = (token: unknown, shard?: string): { shard: string; sequence: number } => {
  const text = typeof token === 'string' ? token : ''
  const at = text.lastIndexOf('@')
  const sequence = Number(text.slice(at + 1))
  if (at <= 0 || !/^\d+$/.test(text.slice(at + 1)) || !Number.isSafeInteger(sequence)) {
    throw new InvalidInput({ field: 'after', message: `after: not a write token: ${JSON.stringify(token)?.slice(0, 80)}` })
  }
  const owner = text.slice(0, at)
  if (shard !== undefined && owner !== shard) {
    throw new InvalidInput({ field: 'after', message: `after: the token is for shard ${owner}, but this read goes to shard ${shard}` })
  }
  return { shard: owner, sequence }
}
