/** Formatting for the command line: numbers, sizes, durations, shard names and tables. */
import Table from 'cli-table3'
import type { MessageMeta } from '../index.js'

/** 12,345. */
export const num = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 0 })

/** 1.2 MB. */
export const bytes = (n: number): string => {
  if (n < 1024) return `${n} B`
  const units = ['KB', 'MB', 'GB', 'TB']
  let v = n / 1024
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`
}

/** 850 ms, 12.3 s, 2 min 5 s. */
export const duration = (ms: number): string =>
  ms < 1000 ? `${Math.round(ms)} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`

/** `shard 3 of orders`: never `orders/3`, which reads like partition 3. */
export const shardName = (topic: string, shard: number): string => `shard ${shard} of ${topic}`

/** "0..3, 7, 9..10" for [0, 1, 2, 3, 7, 9, 10] (sorted). */
export const ranges = (ns: readonly number[]): string => {
  const parts: string[] = []
  for (let i = 0; i < ns.length; ) {
    let j = i
    while (j + 1 < ns.length && ns[j + 1] === ns[j]! + 1) j++
    parts.push(j === i ? String(ns[i]) : j === i + 1 ? `${ns[i]}, ${ns[j]}` : `${ns[i]}..${ns[j]}`)
    i = j + 1
  }
  return parts.join(', ')
}

/** An ISO time and the milliseconds: `2025-11-26T07:30:00.420Z (1764142200420)`. */
export const time = (ms: number): string => `${new Date(ms).toISOString()} (${ms})`

/** A table, boxed in a terminal, plain columns otherwise (no colours: a redrawn display measures lines by their length). */
export const table = (head: readonly string[], rows: readonly (readonly (string | number)[])[], tty: boolean): string => {
  const t = new Table({
    head: [...head],
    style: { head: [], border: [], compact: true, 'padding-left': 1, 'padding-right': 1 },
    ...(tty ? {} : { chars: plainChars }),
  })
  for (const row of rows) t.push(row.map(String))
  return t.toString()
}

/** cli-table3 characters for plain text (logs, pipes): columns separated by spaces, a dashed rule under the head. */
const plainChars = {
  top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
  bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
  left: '', 'left-mid': '', mid: '', 'mid-mid': '',
  right: '', 'right-mid': '', middle: ' ',
}

/** A meta as `key: value` lines. */
export const metaLines = (meta: MessageMeta): string =>
  [`msgId      ${meta.msgId}`, `timestamp  ${time(meta.timestamp)}`, `segment    ${meta.segmentId}, offset ${meta.offset}`, `length     ${meta.msgLen} bytes`].join('\n')
