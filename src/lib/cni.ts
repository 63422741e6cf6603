/**
 * The CNI plugin protocol (spec 1.0): the runtime runs a plugin with CNI_*
 * variables and the network configuration on stdin; ADD prints a result,
 * errors are a JSON object on stdout and a non-zero exit.
 */
export const CNI_SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']

export const CNI_ERROR = {INCOMPATIBLE_VERSION: 1, UNKNOWN_CONTAINER: 3, INVALID_ENV: 4, IO: 5, DECODE: 6, INVALID_CONFIG: 7, TRY_AGAIN_LATER: 11} as const

export interface CniInterface {
  name: string
  mac?: string
  sandbox?: string
}

export interface CniResult {
  cniVersion: string
  interfaces?: CniInterface[]
  ips?: {address: string; gateway?: string; interface?: number}[]
  routes?: {dst: string; gw?: string}[]
  dns?: Record<string, unknown>
}

export interface CniConfig {
  cniVersion: string
  name: string
  type: string
  prevResult?: CniResult
  [field: string]: unknown
}

export interface CniContext {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS'
  containerId: string
  netns: string
  ifname: string
  /** CNI_ARGS as key=value pairs (K8S_POD_NAMESPACE, K8S_POD_NAME, IP, …). */
  args: Record<string, string>
  config: CniConfig
}

export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message)
  }
}

export function parseCniArgs(text: string | undefined): Record<string, string> {
  return Object.fromEntries((text ?? '').split(';').filter(Boolean).map((pair) => {
    const at = pair.indexOf('=')
    return at < 0 ? [pair, ''] : [pair.slice(0, at), pair.slice(at + 1)]
  }))
}

export type CniHandlers = Partial<Record<'ADD' | 'DEL' | 'CHECK', (context: CniContext) => Promise<CniResult | void>>>

/** Run a plugin: read the environment and stdin, dispatch, print the result or the error, exit. */
export async function runCniPlugin(handlers: CniHandlers, env: NodeJS.ProcessEnv = process.env, stdin: NodeJS.ReadableStream = process.stdin): Promise<never> {
  let version = '1.0.0'
  try {
    const command = env.CNI_COMMAND as CniContext['command'] | undefined
    if (command === 'VERSION') {
      process.stdout.write(JSON.stringify({cniVersion: '1.0.0', supportedVersions: CNI_SUPPORTED_VERSIONS}) + '\n')
      process.exit(0)
    }
    const chunks: Buffer[] = []
    for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Buffer))
    let config: CniConfig
    try {
      config = JSON.parse(Buffer.concat(chunks).toString('utf8')) as CniConfig
    } catch (error) {
      throw new CniError(CNI_ERROR.DECODE, 'the network configuration on stdin is not valid JSON', (error as Error).message)
    }
    version = config.cniVersion ?? version
    if (!CNI_SUPPORTED_VERSIONS.includes(version)) throw new CniError(CNI_ERROR.INCOMPATIBLE_VERSION, `unsupported cniVersion ${version}`, `supported: ${CNI_SUPPORTED_VERSIONS.join(', ')}`)
    if (!command) throw new CniError(CNI_ERROR.INVALID_ENV, 'CNI_COMMAND is not set')
    const handler = handlers[command as 'ADD' | 'DEL' | 'CHECK']
    if (!handler) {
      // GC and STATUS (1.1): nothing kept here to collect; ready whenever called.
      process.exit(0)
    }
    if (!env.CNI_CONTAINERID) throw new CniError(CNI_ERROR.INVALID_ENV, 'CNI_CONTAINERID is not set')
    if (command !== 'DEL' && !env.CNI_NETNS) throw new CniError(CNI_ERROR.INVALID_ENV, 'CNI_NETNS is not set')
    const result = await handler({command, containerId: env.CNI_CONTAINERID, netns: env.CNI_NETNS ?? '', ifname: env.CNI_IFNAME ?? 'eth0', args: parseCniArgs(env.CNI_ARGS), config})
    if (command === 'ADD' && result) process.stdout.write(JSON.stringify({...result, cniVersion: version}) + '\n')
    process.exit(0)
  } catch (error) {
    const failure = error instanceof CniError ? error : new CniError(CNI_ERROR.IO, (error as Error).message)
    process.stdout.write(JSON.stringify({cniVersion: version, code: failure.code, msg: failure.message, details: failure.details}) + '\n')
    process.exit(1)
  }
}
