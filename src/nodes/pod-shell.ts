import type * as k8s from '@kubernetes/client-node'
import {execInPod} from '../cluster/exec.js'
import type {NodeShell, RunOptions, RunResult} from './shell.js'

/** A node reached through its debug pod: every command is an exec into that pod. */
export class PodShell implements NodeShell {
  constructor(
    readonly node: string,
    private readonly config: k8s.KubeConfig,
    private readonly namespace: string,
    private readonly pod: string,
    private readonly container: string,
  ) {}

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return execInPod(this.config, this.namespace, this.pod, this.container, argv, {
      stdin: options.stdin,
      endStdin: !options.keepStdinOpen,
      timeoutMs: options.timeoutMs,
      stdout: options.stdout,
      signal: options.signal,
    })
  }

  async close(): Promise<void> {}
}
