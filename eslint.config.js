import js from '@eslint/js'
import tseslint from 'typescript-eslint'

/*
 * The layering of src/, bottom to top: lib (pure utilities) -> cluster, nodes,
 * datapath -> sync (the planner and applying plans) -> the features -> cli ->
 * commands. A folder imports only from its own layer or below, and features
 * not from each other (the support bundle embeds map dumps: bundle -> maps).
 * The lab's API server (src/lab/api) imports nothing from the rest of the lab.
 */
const FEATURES = ['agent', 'install', 'maps', 'monitor', 'traceflow', 'bundle', 'conformance']
const ABOVE_SYNC = [...FEATURES, 'lab', 'cli', 'commands']
const layering = (files, forbidden, message) => ({
  files,
  rules: {'no-restricted-imports': ['error', {patterns: [{group: forbidden, message}]}]},
})
const folders = (names) => names.map((name) => `../${name}/*`)
const LAYERS = [
  layering(['src/lib/**/*.ts'], ['../*'], 'src/lib holds pure utilities: it imports nothing else from src/'),
  layering(['src/cluster/**/*.ts', 'src/nodes/**/*.ts', 'src/datapath/**/*.ts'], folders(['sync', ...ABOVE_SYNC]), 'cluster, nodes and datapath are below sync and the features'),
  layering(['src/sync/**/*.ts'], folders(ABOVE_SYNC), 'sync is below the features, cli and commands'),
  ...FEATURES.map((feature) => layering([`src/${feature}/**/*.ts`], folders([...FEATURES.filter((other) => other !== feature && !(feature === 'bundle' && other === 'maps')), 'lab', 'cli', 'commands']), 'a feature imports only from lib, cluster, nodes, datapath and sync (shared code goes down a layer)')),
  layering(['src/lab/*.ts'], folders([...FEATURES, 'cli', 'commands']), 'the lab is a fixture: it imports only the lower layers'),
  layering(['src/lab/api/**/*.ts'], ['../*.js', ...folders([...FEATURES, 'cli', 'commands'])], 'the lab\'s API server imports nothing from the rest of the lab'),
  layering(['src/cli/**/*.ts'], folders(['commands']), 'cli is below commands'),
]

export default tseslint.config(
  {ignores: ['dist/**', 'node_modules/**']},
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', {argsIgnorePattern: '^_'}],
    },
  },
  ...LAYERS,
  {
    files: ['bin/*.js', 'scripts/*.mjs', 'eslint.config.js'],
    languageOptions: {globals: {process: 'readonly', console: 'readonly'}},
  },
)
