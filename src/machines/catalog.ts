/**
 * The machines of `actors/`, by the names the command line and the inspector use (`rockvisor machines --machine NAME`).
 */
import type { AnyStateMachine } from 'xstate'
import { primaryMachine, readerMachine, rootSupervisorMachine, shardSupervisorMachine } from '../../actors/index.js'

export interface MachineEntry {
  /** The short name: the machine's XState id (`root`, `shard`, `primary`, `reader`). */
  readonly name: string
  /** The heading used in README.md and the inspector. */
  readonly title: string
  /** What it supervises or holds, in a few words. */
  readonly summary: string
  readonly machine: AnyStateMachine
}

/** Every machine, from the top of the actor tree down (the README draws them in this order). */
export const machineCatalog: readonly MachineEntry[] = [
  { name: 'root', title: 'Root supervisor', summary: 'one per index: creates each shard supervisor exactly once', machine: rootSupervisorMachine },
  { name: 'shard', title: 'Shard supervisor', summary: 'one per (topic, shard): restarts its primary and readers', machine: shardSupervisorMachine },
  { name: 'primary', title: 'Primary', summary: "the shard's only read-write RocksDB instance", machine: primaryMachine },
  { name: 'reader', title: 'Reader', summary: "a read-only RocksDB instance of the shard's directory", machine: readerMachine },
]

/** The names `--machine` accepts. */
export const machineNames: readonly string[] = machineCatalog.map((m) => m.name)

/** The machine called `name` (also `root-supervisor`, `shard-supervisor`), or undefined. */
export const findMachine = (name: string): MachineEntry | undefined => {
  const n = name.toLowerCase().replace(/-supervisor$/, '')
  return machineCatalog.find((m) => m.name === n)
}
