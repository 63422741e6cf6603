import {existsSync} from 'node:fs'
import {fileURLToPath} from 'node:url'

/**
 * argv that runs a sibling script with this Node: the compiled .js next to the
 * caller, or the .ts source through tsx when running from src/ (bin/dev.js).
 */
export function nodeScript(base: string, relative: string): string[] {
  const js = fileURLToPath(new URL(`${relative}.js`, base))
  if (existsSync(js)) return [process.execPath, js]
  return [process.execPath, '--import', 'tsx', fileURLToPath(new URL(`${relative}.ts`, base))]
}
