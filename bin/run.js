#!/usr/bin/env node
import module from 'node:module'

// Node 22.1+ keeps compiled code between runs (a no-op on Node 20): most of start-up is compiling @oclif/core.
module.enableCompileCache?.()
const {execute} = await import('@oclif/core')
await execute({dir: import.meta.url})
