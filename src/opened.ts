/**
 * Iterators that open what they iterate at their first `next()`, and then cost nothing of their own per entry.
 */

/**
 * An async iterator over the iterator `open` gives at the first `next()` (nothing, when it gives `undefined`): from
 * then on each `next()` is that iterator's own, without a layer of its own per entry (a generator delegating with
 * `yield*` costs a turn of promises per entry). `open` runs within the first `next()`, and so does the opened
 * iterator's first `next()` when `open` answers at once (as a generator's body starts within its first `next()`). A
 * `return()` before the first `next()` opens nothing; a failure of `open` fails the `next()` that opened it, and the
 * iteration ends there.
 */
export const openedAtFirstNext = <T>(open: () => AsyncIterator<T> | undefined | Promise<AsyncIterator<T> | undefined>): AsyncIterableIterator<T> => {
  const done: IteratorReturnResult<undefined> = { done: true, value: undefined }
  let opened: AsyncIterator<T> | undefined
  let opening: Promise<AsyncIterator<T> | undefined> | undefined
  let ended = false
  return {
    [Symbol.asyncIterator]() {
      return this
    },
    next: () => {
      if (opened !== undefined) return opened.next()
      if (ended) return Promise.resolve(done)
      if (opening !== undefined) return opening.then((it) => (it === undefined ? done : it.next()), () => done)
      let got: AsyncIterator<T> | undefined | Promise<AsyncIterator<T> | undefined>
      try {
        got = open()
      } catch (e) {
        ended = true
        return Promise.reject(e)
      }
      if (!(got instanceof Promise)) {
        if (got === undefined) {
          ended = true
          return Promise.resolve(done)
        }
        opened = got
        return got.next()
      }
      // Once opened, next() goes straight to it; with nothing opened, or a failed opening, the `opening` branch
      // above answers every later next() as the end.
      opening = got.then((it) => (opened = it))
      // The `next()` that opens it fails with the opening; any other waiting for the same opening ends.
      return opening.then((it) => (it === undefined ? done : it.next()))
    },
    return: async (value?: unknown) => {
      if (opened === undefined && opening === undefined) {
        ended = true
        return done
      }
      const it = opened ?? (await opening!.catch(() => undefined))
      return (await it?.return?.(value)) ?? done
    },
  }
}
