import {attachPrograms, detachPrograms, interfacesWithPinion, type NodeInterface, resolveInterfaces} from '../datapath/attach.js'
import {BpfTool} from '../datapath/bpftool.js'
import {DATAPATH_ABI_VERSION, KERNEL_MAP_TYPE, MAPS, mapPinPath} from '../datapath/catalogue.js'
import {NODE_TOOL_DIR, nodeMapTool} from '../datapath/maptool.js'
import type {DatapathObject} from '../datapath/object.js'
import {basename} from 'node:path'
import {copyIn} from '../nodes/copy.js'
import {LOCK_FILE} from '../nodes/lock-file.js'
import {type NodeShell, runChecked} from '../nodes/shell.js'
import {applyEntries, endpointEntries, type MapChanges} from './apply.js'
import type {NodePlan} from './plan.js'
import {migrateRetiredMaps} from './migrate.js'
import {NODE_STATE_DIR, NotInstalledError, readNodeRecord, writeNodeRecord} from '../datapath/node-state.js'

export interface NodeInstallResult {
  action: 'installed' | 'upgraded' | 'unchanged' | 'synced'
  interfaces: number
  endpoints: number
  changes: MapChanges
}

async function pinnedPrograms(shell: NodeShell, pinRoot: string): Promise<boolean> {
  return (await shell.run(['sh', '-c', 'test -e "$1/progs/from_pod" && test -e "$1/progs/to_pod"', 'check', pinRoot])).exitCode === 0
}

/** The maps pinned under pinRoot, with the staging directories cleared for a load. */
async function pinnedMapNames(shell: NodeShell, pinRoot: string): Promise<Set<string>> {
  await runChecked(shell, ['sh', '-c', 'mkdir -p "$1/maps" && rm -rf "$1/progs_new" "$1/maps_new"', 'stage', pinRoot])
  return new Set((await runChecked(shell, ['ls', `${pinRoot}/maps`])).stdout.toString('utf8').split('\n').filter(Boolean))
}

/**
 * Load a new object next to the running one: programs into progs_new, maps
 * that already exist reused (conntrack survives), new maps pinned. Nothing
 * running changes until the programs are attached. bpffs names cannot hold dots.
 * `existing`: the maps pinned before (pinnedMapNames).
 */
async function loadStaged(shell: NodeShell, pinRoot: string, objectPath: string, existing: ReadonlySet<string>, sizes: ReadonlyMap<string, number>): Promise<void> {
  const reuse: Record<string, string> = {}
  // A resizable map is created at its planned size before the load, which then uses it
  // (libbpf takes a reused map's size as it is); pinned maps keep theirs.
  const tool = await nodeMapTool(shell)
  for (const spec of MAPS) {
    const size = sizes.get(spec.name)
    if (existing.has(spec.name) || !spec.resizable || size === undefined || size === spec.maxEntries) continue
    await tool.create(mapPinPath(pinRoot, spec.name), {type: KERNEL_MAP_TYPE[spec.type], key: spec.key.size, value: spec.value!.size, max: size, flags: spec.flags, name: spec.name})
    reuse[spec.name] = mapPinPath(pinRoot, spec.name)
  }
  for (const spec of MAPS) {
    if (!existing.has(spec.name)) continue
    const shown = JSON.parse((await runChecked(shell, ['bpftool', '-j', 'map', 'show', 'pinned', mapPinPath(pinRoot, spec.name)])).stdout.toString('utf8')) as {type: string; bytes_key: number; bytes_value: number; max_entries: number}
    const compatible = shown.type === spec.type && shown.bytes_key === spec.key.size && (spec.value ? shown.bytes_value === spec.value.size : true)
    if (!compatible) throw new Error(`pinned map ${spec.name} has another layout (${shown.type}, key ${shown.bytes_key} B, value ${shown.bytes_value} B); a layout change needs a new map name`)
    reuse[spec.name] = mapPinPath(pinRoot, spec.name)
  }
  await new BpfTool(shell).loadAll(objectPath, `${pinRoot}/progs_new`, `${pinRoot}/maps_new`, reuse)
  // New maps move into place; pins of reused maps in maps_new are duplicates and go.
  await runChecked(shell, ['sh', '-c', 'cd "$1/maps_new" && for m in *; do [ -e "$1/maps/$m" ] || mv "$m" "$1/maps/$m"; done; rm -rf "$1/maps_new"', 'promote', pinRoot])
}

/**
 * After an upgrade: maps the new object no longer has (replaced by a _v2
 * layout) are unpinned. `pinnedBefore`: what loadStaged found; the maps it
 * added are all the new object's own.
 */
async function unpinRetiredMaps(shell: NodeShell, pinRoot: string, pinnedBefore: ReadonlySet<string>): Promise<void> {
  const retired = [...pinnedBefore].filter((name) => !MAPS.some((spec) => spec.name === name))
  if (retired.length > 0) await runChecked(shell, ['rm', '-f', ...retired.map((name) => mapPinPath(pinRoot, name))])
}

/**
 * Install or upgrade the datapath on one node and fill its maps from the plan.
 * Idempotent. On failure the node goes back to how it was: a fresh node is
 * uninstalled, an installed one keeps (or gets back) its previous programs.
 */
export interface InstallNodeOptions {
  /** Entries of each resizable map created by this run (plannedSizes); the object's sizes otherwise. */
  sizes?: ReadonlyMap<string, number>
}

export async function installNode(shell: NodeShell, plan: NodePlan, object: DatapathObject, pinRoot: string, progress: (step: string) => void, options: InstallNodeOptions = {}): Promise<NodeInstallResult> {

  const previous = await readNodeRecord(shell)
  const hadPrograms = previous !== undefined && (await pinnedPrograms(shell, pinRoot))
  if (previous && previous.pinRoot !== pinRoot) throw new Error(`Pinion is installed on ${shell.node} at ${previous.pinRoot}: use --pin-root ${previous.pinRoot}, or uninstall it first`)
  const upgrade = !hadPrograms || previous.objectSha !== object.sha
  const interfaces = await resolveInterfaces(shell)
  const podInterfaces = plan.endpoints.flatMap((endpoint) => interfaces.get(endpoint.ip)?.name ?? [])
  // What this run changed, so a failure undoes exactly that and nothing else.
  const done = {rootCreated: false, objectCopied: '', mapsPinned: [] as string[], attached: false, freshNode: previous === undefined}
  let changes: MapChanges
  try {
    const maps = await nodeMapTool(shell)
    const fill = () => fillMaps(shell, plan, interfaces, pinRoot, hadPrograms, progress)
    if (upgrade) {
      const objectDir = `${NODE_STATE_DIR}/bpf`
      const objectName = `pinion-${object.sha.slice(0, 12)}.bpf.o`
      done.rootCreated = (await shell.run(['test', '-e', pinRoot])).exitCode !== 0
      progress('copying the datapath object')
      const hadObject = (await shell.run(['test', '-e', `${objectDir}/${objectName}`])).exitCode === 0
      await copyIn(shell, objectDir, [{name: objectName, data: object.data}])
      if (!hadObject) done.objectCopied = `${objectDir}/${objectName}`
      progress('loading programs and maps')
      const pinnedBefore = await pinnedMapNames(shell, pinRoot)
      // Known before anything is created, so a failed load takes back the maps it made.
      done.mapsPinned = MAPS.map((spec) => spec.name).filter((name) => !pinnedBefore.has(name))
      await loadStaged(shell, pinRoot, `${objectDir}/${objectName}`, pinnedBefore, options.sizes ?? new Map())
      // A map with a new layout starts empty: conntrack is carried over and
      // the rest filled before the new programs see a packet.
      const carried = await migrateRetiredMaps(maps, pinRoot, pinnedBefore)
      if (carried > 0) progress(`carried ${carried} conntrack entries into the new layout`)
      changes = await fill()
      done.attached = true
      await attach(shell, podInterfaces, `${pinRoot}/progs_new`, progress)
      await runChecked(shell, ['sh', '-c', 'rm -rf "$1/progs" && mv "$1/progs_new" "$1/progs"', 'swap', pinRoot])
      await unpinRetiredMaps(shell, pinRoot, pinnedBefore)
    } else {
      // Maps first: a newly attached pod's first packets find their endpoint and rules.
      changes = await fill()
      await attach(shell, podInterfaces, `${pinRoot}/progs`, progress)
    }
    const now = new Date().toISOString()
    await writeNodeRecord(shell, {version: object.version, abi: DATAPATH_ABI_VERSION, objectSha: object.sha, pinRoot, installedAt: upgrade ? now : previous!.installedAt, lastSync: now, interfaces: podInterfaces, endpoints: plan.endpoints.length})
    const action = !hadPrograms ? 'installed' : upgrade ? 'upgraded' : changes.updated + changes.deleted > 0 ? 'synced' : 'unchanged'
    return {action, interfaces: podInterfaces.length, endpoints: plan.endpoints.length, changes}
  } catch (error) {
    progress('failed: rolling back')
    await rollBack(shell, pinRoot, hadPrograms, podInterfaces, done).catch(() => {})
    throw error
  }
}

/** Make the maps hold the plan (endpoint entries for the pods whose interface the node has). */
async function fillMaps(shell: NodeShell, plan: NodePlan, interfaces: ReadonlyMap<string, NodeInterface>, pinRoot: string, programsRunning: boolean, progress: (step: string) => void): Promise<MapChanges> {
  progress('filling maps')
  return applyEntries(await nodeMapTool(shell), pinRoot, [...plan.entries, ...endpointEntries(plan, interfaces)], {programsRunning})
}

async function attach(shell: NodeShell, podInterfaces: readonly string[], progsDir: string, progress: (step: string) => void): Promise<void> {
  progress(`attaching to ${podInterfaces.length} pod interfaces`)
  await attachPrograms(shell, podInterfaces, progsDir)
}

/**
 * Bring an installed node up to its plan: fill the maps, then attach the
 * running programs to pods that lack them. Never loads or upgrades programs
 * (a node without them is NotInstalledError); the install record keeps its
 * object and gains the sync time.
 */
export async function syncNode(shell: NodeShell, plan: NodePlan, pinRoot: string, progress: (step: string) => void): Promise<NodeInstallResult> {
  const previous = await readNodeRecord(shell)
  if (!previous || !(await pinnedPrograms(shell, pinRoot))) throw new NotInstalledError(shell.node, pinRoot)
  if (previous.pinRoot !== pinRoot) throw new Error(`Pinion is installed on ${shell.node} at ${previous.pinRoot}: use --pin-root ${previous.pinRoot}`)
  const interfaces = await resolveInterfaces(shell)
  const podInterfaces = plan.endpoints.flatMap((endpoint) => interfaces.get(endpoint.ip)?.name ?? [])
  const changes = await fillMaps(shell, plan, interfaces, pinRoot, true, progress)
  await attach(shell, podInterfaces, `${pinRoot}/progs`, progress)
  await writeNodeRecord(shell, {...previous, lastSync: new Date().toISOString(), interfaces: podInterfaces, endpoints: plan.endpoints.length})
  return {action: changes.updated + changes.deleted > 0 ? 'synced' : 'unchanged', interfaces: podInterfaces.length, endpoints: plan.endpoints.length, changes}
}

/**
 * Undo what one failed installNode run did, and only that: a node that had
 * programs gets them back on the interfaces this run touched; on a fresh
 * node the interfaces this run attached are detached and the pins and files
 * it created removed. Other pin roots, other runs' files and the node
 * record are never touched.
 */
async function rollBack(shell: NodeShell, pinRoot: string, hadPrograms: boolean, podInterfaces: readonly string[], done: {rootCreated: boolean; objectCopied: string; mapsPinned: readonly string[]; attached: boolean; freshNode: boolean}): Promise<void> {
  if (hadPrograms) {
    await attachPrograms(shell, podInterfaces, `${pinRoot}/progs`).catch(() => {})
    await shell.run(['rm', '-rf', `${pinRoot}/progs_new`, `${pinRoot}/maps_new`])
    return
  }
  if (done.attached) await detachPrograms(shell, podInterfaces)
  if (done.rootCreated) await shell.run(['rm', '-rf', pinRoot])
  else await shell.run(['rm', '-rf', `${pinRoot}/progs_new`, `${pinRoot}/maps_new`, ...done.mapsPinned.map((name) => mapPinPath(pinRoot, name))])
  if (done.objectCopied) await shell.run(['rm', '-f', done.objectCopied])
  // The native map tool came with this run on a node Pinion never had.
  if (done.freshNode) await shell.run(['rm', '-rf', NODE_TOOL_DIR])
}

/** Detach from every interface, unpin everything and remove Pinion's files; idempotent. */
export async function uninstallNode(shell: NodeShell, pinRoot: string): Promise<{interfaces: number; wasInstalled: boolean}> {
  const record = await readNodeRecord(shell)
  const attached = await interfacesWithPinion(shell)
  await detachPrograms(shell, attached)
  const pinned = (await shell.run(['test', '-e', pinRoot])).exitCode === 0
  // The state directory may be a mount point (lab nodes): empty it, then try to remove it.
  // The writer lock stays until its holder (this run) releases it.
  await runChecked(shell, ['sh', '-c', 'rm -rf "$1" && if [ -d "$2" ]; then find "$2" -mindepth 1 ! -name "$3" ! -name "$3.guard" -delete && rmdir "$2" 2>/dev/null; fi; true', 'uninstall', pinRoot, NODE_STATE_DIR, basename(LOCK_FILE)])
  return {interfaces: attached.length, wasInstalled: Boolean(record) || pinned || attached.length > 0}
}
