import {existsSync} from 'node:fs'
import {fileURLToPath} from 'node:url'

/**
 * argv that runs a sibling script with this Node: the compiled .js next to the
 * caller, or the .ts source through tsx when running from src/ (bin/dev.js).
 * tsx is named by its resolved path, so the argv works from any working
 * directory (nsenter into a mount namespace starts in its root).
 */
export function nodeScript(base: string, relative: string): string[] {
  const js = fileURLToPath(new URL(`${relative}.js`, base))
  if (existsSync(js)) return [process.execPath, js]
  return [process.execPath, '--import', import.meta.resolve('tsx'), fileURLToPath(new URL(`${relative}.ts`, base))]
}
