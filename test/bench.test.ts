/**
 * The benchmark's own setup (`npm run bench` is not run by `npm test`): `openWarmIndex` must bring up every shard a
 * data set uses before the timed writes, without writing to the data set's partitions. It once relied on a retention
 * pass to open shards; once retention of a shard nobody wrote created nothing, every run of the benchmark failed at
 * its first write section, and no test saw it.
 */
import { expect, it } from 'vitest'
import { makeDataset } from '../bench/data.js'
import { openWarmIndex, settled, topic, writeIndex } from '../bench/write.js'
import { shardOf } from '../src/index.js'
import { cleanupAfterEach } from './support/cleanups.js'

const { add, scratch } = cleanupAfterEach()

it("should open every shard of the data set, its primary and readers ready, and leave the data set's partitions empty", async () => {
  const ds = makeDataset(400, 100, 4, 2)
  const index = await openWarmIndex(await scratch(), ds, 4)
  add(() => index.close())
  expect(settled(index, 4)).toBe(true)
  expect(new Set(index.stats().shards.map((s) => s.id))).toEqual(new Set(ds.partitions.map((p) => index.locate(topic, p).id)))
  expect(new Set(ds.partitions.map((p) => shardOf(p, 4))).size).toBe(4)
  for (const p of ds.partitions) expect(await index.getRangeByTime(topic, p, 0, Number.MAX_SAFE_INTEGER, { consistency: 'primary' })).toBeUndefined()
  // The timed part then writes every meta of the data set.
  await writeIndex(index, ds, 4)
  const first = ds.batches[0]!.metas[0]!
  expect(await index.getByMsgId(topic, ds.batches[0]!.partition, first.msgId)).toEqual(first)
})
