import {Listr} from 'listr2'

/**
 * Live per-node progress on stderr: a spinner line per node on a terminal
 * (listr2), plain "node: step" lines otherwise. Work runs elsewhere; this
 * only shows it.
 */
export class NodeProgress {
  private readonly settle = new Map<string, {resolve: () => void; reject: (error: Error) => void}>()
  private readonly outputs = new Map<string, (text: string) => void>()
  private readonly listr?: Promise<unknown>

  constructor(
    nodes: readonly string[],
    private readonly label: string,
    private readonly tty = Boolean(process.stderr.isTTY) && !('NO_COLOR' in process.env) && process.env.CI === undefined,
  ) {
    if (!this.tty) return
    const tasks = new Listr(
      nodes.map((node) => ({
        title: node,
        task: (_ctx: unknown, task: {output: string; title: string}) => new Promise<void>((resolve, reject) => {
          this.settle.set(node, {resolve, reject})
          this.outputs.set(node, (text) => (task.output = text))
        }),
      })),
      {concurrent: true, exitOnError: false, renderer: 'default', rendererOptions: {collapseErrors: false}},
    )
    this.listr = tasks.run().catch(() => {})
  }

  update(node: string, step: string): void {
    if (this.tty) this.outputs.get(node)?.(step)
    else process.stderr.write(`${this.label} ${node}: ${step}\n`)
  }

  done(node: string, error?: string): void {
    if (this.tty) {
      const settle = this.settle.get(node)
      if (error) settle?.reject(new Error(error))
      else settle?.resolve()
    } else {
      process.stderr.write(`${this.label} ${node}: ${error ? `FAILED: ${error}` : 'done'}\n`)
    }
  }

  async finish(): Promise<void> {
    await this.listr
  }
}
