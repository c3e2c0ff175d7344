// The reader worker thread of `readers.placement: 'worker'`, or the reader child process of `'process'` (started by
// src/reader-workers.ts, one or a few per index). Plain JavaScript that imports only rocksdb-native and Node: workers
// and children are not transformed by vitest or tsx, and the build copies this file as it is next to the compiled
// code (scripts/copy-assets.mjs). In a worker it talks over `parentPort`; forked, over its IPC channel
// (`serialization: 'advanced'`), and it exits when that channel closes (its parent closed it, or went away).
//
// Protocol (every request but `endIter` carries an `id`, answered once by `{ id, ... }` or `{ id, error }`):
//   open     { path, options }              -> { h }                      a RocksDB instance (the binding's options)
//   get      { h, n, buf }                  -> { buf, errors? }           one MultiGet of n keys packed in `buf`
//   iter     { h, range, chunk }            -> { it, buf, count, done }   opens an iterator and reads `chunk` entries
//   next     { it, chunk }                  -> { buf, count, done }       the next `chunk` entries
//   endIter  { it }                                                       destroys an iterator (no answer)
//   write    { h, ops }                     -> {}                         one write batch
//   flush / property { h, name } / close { h } / shutdown {} / census {} -> { h, it } (instances and iterators open here)
// Packed keys: n uint32 lengths, then the bytes. Packed values: n int32 lengths (-1: absent or failed), then the
// bytes. Packed entries: count pairs of uint32 (key length, value length), then key and value bytes, entry by entry.
// The answers' buffers are transferred, not copied (a child's IPC copies them). Errors cross as plain data (name,
// message, code, cause, errors) and are classified on the main thread exactly as an in-process error would be.
import { parentPort } from 'node:worker_threads'
import RocksDB from 'rocksdb-native'

/** Open instances by handle id: the instance and the ids of its open iterators. */
const handles = new Map()
/** Open iterators by id: the iterator, its async iterator, its handle id. */
const iterators = new Map()
let nextHandle = 1
let nextIterator = 1

const serialize = (e) => {
  if (e instanceof AggregateError) return { name: e.name, message: e.message, code: e.code, errors: e.errors.map(serialize) }
  if (e instanceof Error) return { name: e.name, message: e.message, code: e.code, cause: e.cause === undefined ? undefined : serialize(e.cause) }
  return { value: String(e) }
}

const handleOf = (h) => {
  const entry = handles.get(h)
  // The main thread stops using a handle once it asked to close it; an unknown id is a protocol error.
  if (entry === undefined) throw new Error(`RocksDB session is closed (no handle ${h} in the reader worker)`)
  return entry
}

/** Reads up to `chunk` entries of iterator `id`; destroys it once it is exhausted or failed. */
const pull = async (id, chunk) => {
  const rec = iterators.get(id)
  if (rec === undefined) throw new Error('the iterator was destroyed (its handle was closed)')
  const entries = []
  let bytes = 0
  let done = false
  try {
    while (entries.length < chunk) {
      const step = await rec.pull.next()
      if (step.done) {
        done = true
        break
      }
      const { key, value } = step.value
      entries.push(key, value ?? Buffer.alloc(0))
      bytes += key.length + (value?.length ?? 0)
    }
  } catch (e) {
    drop(id)
    throw e
  }
  if (done) drop(id)
  const count = entries.length / 2
  const buf = new ArrayBuffer(8 * count + bytes)
  const lengths = new Uint32Array(buf, 0, 2 * count)
  const out = new Uint8Array(buf)
  let at = 8 * count
  for (let i = 0; i < entries.length; i++) {
    const b = entries[i]
    lengths[i] = b.length
    out.set(b, at)
    at += b.length
  }
  return { reply: { buf, count, done }, transfer: [buf] }
}

/** The answer of a `get`: n int32 lengths (-1: absent or failed), then the values' bytes, in one buffer. */
const pack = (values, bytes, errors) => {
  const n = values.length
  const out = new ArrayBuffer(4 * n + bytes)
  const lengths = new Int32Array(out, 0, n)
  const bytesOut = new Uint8Array(out)
  let at = 4 * n
  for (let i = 0; i < n; i++) {
    const value = values[i]
    if (value === null || value === undefined) {
      lengths[i] = -1
      continue
    }
    lengths[i] = value.length
    bytesOut.set(value, at)
    at += value.length
  }
  return { reply: errors === undefined ? { buf: out } : { buf: out, errors }, transfer: [out] }
}

const drop = (id) => {
  const rec = iterators.get(id)
  if (rec === undefined) return
  iterators.delete(id)
  handles.get(rec.h)?.iterators.delete(id)
  try {
    rec.it.destroy()
  } catch {
    // already destroyed
  }
}

const closeHandle = async (h) => {
  const entry = handles.get(h)
  if (entry === undefined) return
  handles.delete(h)
  // An iteration still open would keep RocksDB's close waiting: end it (as the in-process handle does).
  for (const id of [...entry.iterators]) drop(id)
  await entry.db.close()
}

const ops = {
  async open({ path, options }) {
    const db = new RocksDB(path, options)
    try {
      await db.ready()
    } catch (e) {
      await db.close().catch(() => undefined)
      throw e
    }
    const h = nextHandle++
    handles.set(h, { db, iterators: new Set() })
    return { reply: { h } }
  },

  get({ h, n, buf }) {
    const { db } = handleOf(h)
    const batch = db.read({ capacity: n, autoDestroy: true })
    const lengths = new Uint32Array(buf, 0, n)
    const values = new Array(n)
    let errors
    let bytes = 0
    return new Promise((resolve, reject) => {
      // The batch settles its keys' promises in key order, each with one reaction (these handlers): `next` is the
      // key being answered. Every key's promise is handled at once: a key that fails (a corrupted block) rejects
      // its own promise, and one left unhandled would end the thread.
      let next = 0
      const done = () => {
        if (++next === n) resolve(pack(values, bytes, errors))
      }
      const onValue = (value) => {
        values[next] = value
        if (value !== null && value !== undefined) bytes += value.length
        done()
      }
      const onError = (e) => {
        ;(errors ??= []).push([next, serialize(e)])
        done()
      }
      let at = 4 * n
      for (let i = 0; i < n; i++) {
        batch.get(Buffer.from(buf, at, lengths[i])).then(onValue, onError)
        at += lengths[i]
      }
      try {
        batch.tryFlush()
      } catch (e) {
        // Not sent: fail the call as a whole (destroying the batch rejects the keys' promises, handled above).
        reject(e)
        try {
          batch.destroy()
        } catch {
          // already destroyed
        }
      }
    })
  },

  async iter({ h, range, chunk }) {
    const entry = handleOf(h)
    const it = entry.db.iterator(range)
    const id = nextIterator++
    iterators.set(id, { h, it, pull: it[Symbol.asyncIterator]() })
    entry.iterators.add(id)
    const { reply, transfer } = await pull(id, chunk)
    return { reply: { ...reply, it: id }, transfer }
  },

  next({ it, chunk }) {
    return pull(it, chunk)
  },

  async write({ h, ops: writes }) {
    const { db } = handleOf(h)
    const batch = db.write({ capacity: writes.length })
    try {
      for (const op of writes) {
        if (op.type === 'put') batch.tryPut(op.key, op.value)
        else if (op.type === 'del') batch.tryDelete(op.key)
        else batch.tryDeleteRange(op.start, op.end)
      }
      await batch.flush()
    } finally {
      batch.destroy()
    }
    return { reply: {} }
  },

  async flush({ h }) {
    await handleOf(h).db.flush()
    return { reply: {} }
  },

  async property({ h, name }) {
    return { reply: { value: String(await handleOf(h).db.getProperty(name)) } }
  },

  async close({ h }) {
    await closeHandle(h)
    return { reply: {} }
  },

  async census() {
    return { reply: { h: handles.size, it: iterators.size } }
  },

  async shutdown() {
    await Promise.allSettled([...handles.keys()].map(closeHandle))
    return { reply: {} }
  },
}

/** The channel to the parent: a worker's port, or a forked child's IPC (a reply after it closed is dropped). */
const channel =
  parentPort !== null
    ? { on: (listener) => parentPort.on('message', listener), send: (reply, transfer) => parentPort.postMessage(reply, transfer) }
    : { on: (listener) => process.on('message', listener), send: (reply) => process.send(reply, () => undefined) }
if (parentPort === null) process.on('disconnect', () => process.exit(0))

channel.on((message) => {
  if (message.op === 'endIter') {
    drop(message.it)
    return
  }
  const { id } = message
  let running
  try {
    running = ops[message.op](message)
  } catch (e) {
    running = Promise.reject(e)
  }
  running.then(
    ({ reply, transfer }) => channel.send({ id, ...reply }, transfer ?? []),
    (e) => channel.send({ id, error: serialize(e) }, []),
  )
})
