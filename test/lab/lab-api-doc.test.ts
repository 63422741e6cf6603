import {readFileSync} from 'node:fs'
import {describe, expect, it} from 'vitest'
import {apiVersionOf, RESOURCES} from '../../src/lab/api/resources.js'
import {REPO_ROOT} from '../helpers/system.js'

describe('docs/lab-api.md', () => {
  it('names every kind the lab API serves, with its group/version and plural', () => {
    const doc = readFileSync(`${REPO_ROOT}docs/lab-api.md`, 'utf8')
    for (const resource of RESOURCES) expect(doc, resource.kind).toContain(`| ${apiVersionOf(resource)} | ${resource.kind} | ${resource.plural} |`)
    const rows = [...doc.matchAll(/^\| [\w./]+ \| (\w+) \| \w+ \| (?:cluster|namespaced) \|/gm)].map((match) => match[1])
    expect(rows.sort()).toEqual(RESOURCES.map((resource) => resource.kind).sort())
  })
})
